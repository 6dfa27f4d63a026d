"""Sweeps, the top floor: a study becomes a plan of trials, run on Ray Tune, with one console and one CLI.

- `study`      what a study is before anything runs (preset, grid or Optuna space, seeds), checked
- `plan`       the trials a sweep needs (shared Stage 1s, reuse of finished runs), pure functions
- `placement`  how many trials fit the cluster at once, and whether a trial trains in its own process
- `trial`      the Tune function trainable (`tune.report`, `tune.get_checkpoint`), or a TorchTrainer inside it
- `run`        `run_sweep`: Stage 1 phase, Tune, the MLflow parent, then the analysis it is handed
- `console`    one progress line when counts change, one line per finished trial
- `cli`        the command line every `sweeps/*.py` script shares

Imports run/, train/ and below; nothing imports it but `sweeps/`.
"""
