import pytest

from r2d.config import ConfigError, load_config


def test_defaults_are_the_authors_recipe():
    cfg = load_config()
    s2 = cfg.stage2
    assert (s2.alpha, s2.alpha_warmup, s2.schedule.shape) == (0.7, 0.05, "linear")
    assert (s2.schedule.warmup, s2.schedule.transition, s2.schedule.cap, s2.patience) == (0.05, 0.6, 0.9, 5)
    assert cfg.stage1.lr == 5e-5 and cfg.stage1.batch_size == 64


def test_dotted_override_parses_types():
    cfg = load_config("configs/triage-tiny.yaml", ["stage2.schedule.shape=exponential",
                                                   "stage2.schedule.steepness=3", "seed=7"])
    assert cfg.stage2.schedule.shape == "exponential"
    assert cfg.stage2.schedule.steepness == 3.0
    assert cfg.seed == 7


@pytest.mark.parametrize(
    "override, expected",
    [
        ("stage2.schedule.shap=linear", "--set stage2.schedule.shap=linear: unknown key"),
        ("stage2.schedule.shape=cosine", "--set stage2.schedule.shape=cosine: Input should be"),
        ("stage2.schedule.cap=1.5", "--set stage2.schedule.cap=1.5: Input should be less than or equal to 1"),
        ("stage1.batch_size=many", "--set stage1.batch_size=many: Input should be a valid integer"),
        ("stage2={max_steps: 0}", "--set stage2={max_steps: 0}: stage2.max_steps: Input should be greater than"),
        ("seed", "--set 'seed': expected key.path=value"),
    ],
)
def test_bad_values_name_the_key(override, expected):
    with pytest.raises(ConfigError) as err:
        load_config(None, [override])
    assert str(err.value).startswith(expected)
    assert "\n" not in str(err.value)


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("stage1: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: line 2: invalid YAML \(expected ',' or '\]', but got "
                       r"'<stream end>', while parsing a flow sequence started on line 1\)$"):
        load_config(bad)
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("stage3: {max_steps: 1}\n")
    with pytest.raises(ConfigError, match="unknown.yaml: stage3: unknown key"):
        load_config(unknown)


def test_every_shipped_config_validates():
    from pathlib import Path

    for path in sorted(Path("configs").glob("*.yaml")):
        load_config(path)


def test_a_fixed_stage1_seed_shares_one_stage1_across_seeds():
    """stage1.seed: every seed of a study trains (and finds) the same Stage 1; unset, each seed has its own."""
    from r2d.train.stage1_store import stage1_key

    shared = [load_config(None, [f"seed={s}", "stage1.seed=7"]) for s in (0, 1)]
    own = [load_config(None, [f"seed={s}"]) for s in (0, 1)]
    assert stage1_key(shared[0]) == stage1_key(shared[1]) == stage1_key(load_config(None, ["seed=7"]))
    assert stage1_key(own[0]) != stage1_key(own[1])
    assert [c.stage_seed(1) for c in shared] == [7, 7] and [c.stage_seed(2) for c in shared] == [0, 1]
