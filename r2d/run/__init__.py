"""A run's life: checked before it exists, started (in process or on Ray Train workers), tracked in MLflow.

- `preflight`    what a command checks before it creates anything
- `runner`       resolved config -> MLflow run -> here or on Ray Train -> end state (FINISHED/FAILED/KILLED)
- `distributed`  the same loop as a Ray Train `TorchTrainer` worker (DDP)
- `tracking`     MLflow calls, and nothing else from r2d
"""
