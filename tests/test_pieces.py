"""The pieces the trainer and the runner are built from, each on its own."""

import math
import pickle

import numpy as np
import pytest
import torch
from mlflow import MlflowClient
from transformers import T5Config, T5ForConditionalGeneration

from r2d.config import ConfigError, load_config, read_config, validate_config
from r2d.run import runner
from r2d.scoring import health
from r2d.sweep.trial import TrialContext
from r2d.train.checkpoints import TrainState, load_checkpoint, restore, save_checkpoint, save_weights
from r2d.train.record import final_metrics
from r2d.train.runtime import Runtime
from r2d.train.sampling import ScheduledSampler
from r2d.train.schedules import ConfidenceGate


class Capture(Runtime):
    """A worker of a two-worker job whose gather keeps what this worker contributed."""

    def gather(self, items):
        self.sent = items
        return items


class WithPeer(Runtime):
    """Rank 0 of a two-worker job: gather returns its items, then the peer's."""

    def gather(self, items):
        return items + self.peer


def test_map_shards_returns_every_row_in_order():
    def fn(rows):
        return [f"r{i}" for i in rows]

    assert Runtime().map_shards(7, 3, fn) == [f"r{i}" for i in range(7)]
    peer = Capture(rank=1, world_size=2)
    peer.map_shards(7, 2, fn)
    assert [row for row, _ in peer.sent] == [1, 3, 5]
    rank0 = WithPeer(rank=0, world_size=2)
    rank0.peer = peer.sent
    assert rank0.map_shards(7, 2, fn) == [f"r{i}" for i in range(7)]


def tiny_t5():
    torch.manual_seed(0)
    return T5ForConditionalGeneration(T5Config(vocab_size=50, d_model=16, d_ff=32, d_kv=8, num_layers=1,
                                               num_decoder_layers=1, num_heads=2, decoder_start_token_id=0))


def test_checkpoint_round_trip_restores_state_weights_and_rng(tmp_path):
    model = tiny_t5()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(input_ids=torch.ones(2, 3, dtype=torch.long), labels=torch.ones(2, 2, dtype=torch.long)).loss.backward()
    optimizer.step()
    gate = ConfidenceGate(total=3.0, count=4, last_reset_step=2)
    best = tmp_path / "best"
    save_weights(model, best)
    torch.manual_seed(123)
    save_checkpoint(tmp_path / "ckpt", model, TrainState(2, 9, 0.5, 7, 1), best, optimizer=optimizer, gate=gate)
    expected_draw = torch.rand(3)

    fresh = tiny_t5()
    state = load_checkpoint(tmp_path / "ckpt", fresh)
    for a, b in zip(model.parameters(), fresh.parameters()):
        assert torch.equal(a, b)
    new_opt, new_gate = torch.optim.AdamW(fresh.parameters(), lr=1e-3), ConfidenceGate()
    restored = restore(state, tmp_path / "best_again", optimizer=new_opt, gate=new_gate)
    assert restored == TrainState(2, 9, 0.5, 7, 1)
    assert new_gate.state_dict() == gate.state_dict()
    assert new_opt.state_dict()["state"][0]["step"] == optimizer.state_dict()["state"][0]["step"]
    assert torch.equal(torch.rand(3), expected_draw)  # the RNG continues where the checkpoint was taken
    assert (tmp_path / "best_again" / "model.safetensors").exists()
    assert load_checkpoint(tmp_path / "nothing", fresh) is None


def test_sampler_at_p0_keeps_gold_without_running_the_model():
    cfg = load_config("configs/triage-tiny.yaml")
    sampler = ScheduledSampler(cfg, ["a", "b"], scorer=None, tokenizer=None, rank=0)
    labels, used = sampler.choose(None, None, None, None, [1, 0, 1], np.array([0.1, 0.5, 0.9]), 0.0, 5, 0)
    assert labels == [1, 0, 1] and used == [0, 0, 0]


def test_read_config_keeps_the_variant_open_and_load_resolves_it():
    raw = read_config("configs/triage-tiny.yaml", ["variant=combined_ft"])
    assert raw["stage1"]["enabled"] is True and raw["stage2"]["schedule"]["shape"] == "linear"
    cfg = load_config("configs/triage-tiny.yaml", ["variant=combined_ft"])
    assert not cfg.stage1.enabled and cfg.stage2.schedule.shape == "constant"
    assert cfg.resources.storage_path.startswith("/") and cfg.tracking.tracking_uri
    with pytest.raises(ConfigError, match="--set seed.x=1: seed is not a section"):
        load_config("configs/triage-tiny.yaml", ["seed.x=1"])


def test_final_metrics_are_flat_numbers():
    summary = {"splits": {"test": {"macro_f1": 0.5, "n": 3, "note": "x"}}, "stage2": {"best_dev_macro_f1": 0.4}}
    assert final_metrics(summary) == {"test/macro_f1": 0.5, "test/n": 3.0, "best_dev_macro_f1": 0.4}


def test_trial_context_is_frozen_and_pickles():
    ctx = TrialContext({"seed": 0}, (0, 1), "s-1", "parent", "sqlite:////tmp/x.db", "exp", "/tmp/runs")
    assert pickle.loads(pickle.dumps(ctx)) == ctx
    with pytest.raises(AttributeError):
        ctx.sweep_id = "other"


@pytest.mark.parametrize("raised, status", [(None, "FINISHED"), (RuntimeError("boom"), "FAILED"),
                                            (KeyboardInterrupt("signal 15"), "KILLED")])
def test_sweep_parent_run_always_ends(tmp_path, raised, status):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    state = {"sweep_id": "study-1"}
    try:
        with runner.sweep_run(uri, "exp", state, {"r2d.sweep_id": "study-1"}, {"search": "grid"}, []) as parent:
            client = MlflowClient(uri)
            assert client.get_run(parent).info.status == "RUNNING"
            trial = client.create_run(client.get_run(parent).info.experiment_id,
                                      tags={"r2d.sweep_id": "study-1", "mlflow.parentRunId": parent}).info.run_id
            if raised is not None:
                raise raised
            client.set_terminated(trial, "FINISHED")
    except (RuntimeError, KeyboardInterrupt):
        pass
    run = MlflowClient(uri).get_run(state["parent_run_id"])
    assert run.info.status == status and run.data.params["search"] == "grid"
    assert ("r2d.error" in run.data.tags) == (raised is not None)
    # a trial running when the sweep ended without finishing is KILLED with it, never left RUNNING
    assert MlflowClient(uri).get_run(trial).info.status == ("FINISHED" if raised is None else "KILLED")


def test_health_flags_from_rationales_and_traces():
    labels = ["yes", "no"]
    assert health.collapsed(["", "yes", "No ", "a reason"], labels)  # 3 of 4 empty or a label
    assert health.collapsed(["same"] * 3 + ["other"], labels)  # one string for most examples
    assert not health.collapsed(["because a", "since b", "as c", "yes"], labels)
    assert all(math.isnan(x) for x in health.loss_trend([1.0] * 10, skip=0))  # too short to tell
    assert health.loss_trend([2.0] * 10 + [1.0] * 20, skip=10) == (1.0, 1.0)
    stage2 = {"best_step": 99, "steps": 100, "stopped_early": False, "loss_trend": (0.5, 0.9)}
    flags = health.flags(stage2, ["because a", "since b"], labels)
    assert flags == {"collapsed": False, "still_improving": True, "diverged": True, "early_stopped": False,
                     "failed": False}
    assert health.unhealthy(flags) == ["still_improving", "diverged"]
    stopped = health.flags({**stage2, "best_step": 50, "stopped_early": True, "loss_trend": (0.9, 0.5)}, None, labels)
    assert health.unhealthy(stopped) == [] and stopped["early_stopped"]
    assert health.unhealthy(health.failed_flags(diverged=True)) == ["diverged", "failed"]


def test_controls_without_stage1_get_the_same_total_budget():
    with_stage1 = load_config("configs/triage-tiny-sweep.yaml", ["variant=teacher_forcing"])
    for variant in ("dss", "sft", "combined_ft", "r2d_no_stage1"):
        cfg = load_config("configs/triage-tiny-sweep.yaml", [f"variant={variant}"])
        assert cfg.stage2.max_steps == with_stage1.stage1.max_steps + with_stage1.stage2.max_steps
        assert validate_config(cfg.to_dict()) == cfg  # resolving again adds nothing
    single = load_config("configs/triage-tiny.yaml")  # equal_total_steps off by default
    assert load_config("configs/triage-tiny.yaml", ["variant=dss"]).stage2.max_steps == single.stage2.max_steps
