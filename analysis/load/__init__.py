"""Loading: run directories or MLflow runs -> `Run`s -> seed-matched systems; the baseline and metrics chosen.

- `runs`, `mlflow_runs`   run.json + predictions files, from disk or from MLflow (cached)
- `health`, `naming`      a run's recorded health flags; a system's display name
- `systems`               group runs into systems, match seeds and example ids: `MatchedSystems`
- `selection`             the metrics every run has, and each stratum's baseline
"""
