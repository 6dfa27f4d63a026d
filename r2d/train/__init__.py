"""The job inside a run: prepare, the two-stage loop, scheduled sampling, evaluation, the run directory.

- `prepare`       data, model + tokenizer, every split tokenised once
- `batches`       pre-tokenised splits and a batch order that is a pure function of (seed, step)
- `schedules`     p(t) and a(t) as pure functions of the step; `sampling` picks each rationale's label
- `objectives`    the four objectives' losses over one model
- `loop`          `run()`: Stage 1 (or the store) -> Stage 2 -> evaluate; `runtime` says where it runs
- `checkpoints`, `stage1_store`   best weights, resumable state, Stage 1 results by hash
- `evaluate`, `record`            predictions files, metrics, run.json and MLflow tags
"""
