"""What the study scripts share: the repository root (presets resolve from any working directory),
and `analyse_sweep`, the one place that composes the library (r2d) with the analysis layer: a
finished sweep's runs -> the significance report (or, for a plan, the referee report), attached to
the sweep's parent MLflow run. r2d never imports analysis/; run_sweep calls what it is handed here.
"""

from pathlib import Path
from typing import Any

from analysis.load.mlflow_runs import load_mlflow_runs
from analysis.referee.report import build_referee_report, load_plan
from analysis.report import attach_to_mlflow, build_report
from r2d.run import tracking
from r2d.sweep.run import FinishedSweep

ROOT = Path(__file__).resolve().parents[1]


def preset(name: str) -> str:
    return str(ROOT / "configs" / name)


# (Stage 1, one Stage 2 trial) wall seconds of configs/triage-tiny-sweep.yaml on 2 CPU cores, two
# trainings at once, in Tune trial processes: the recipe probes of 2026-12-04 (bench/RECIPE.md).
# --dry-run's estimate when the tracking store has no earlier runs of the study.
CPU_ESTIMATE_S = (72.0, 66.0)


def analyse_sweep(sweep: FinishedSweep) -> Any:
    """The significance report over the sweep's finished runs and the runs it reused, attached to its
    parent run; for a plan of questions, the referee report (referee.md, referee.html) as well."""
    # the runs' downloaded predictions stay outside the report folder: the parent run gets the report,
    # not a second copy of its children's predictions
    out, cache = sweep.sweep_dir / "report", sweep.sweep_dir / "report-cache"
    runs = load_mlflow_runs(experiment=sweep.experiment, sweep_id=sweep.sweep_id, tracking_uri=sweep.tracking_uri,
                            cache_dir=cache).runs
    reused = sorted({t.reused_run_id for t in sweep.trials if t.reused_run_id})
    if reused:
        ids = ", ".join(f"'{r}'" for r in reused)
        runs += load_mlflow_runs(experiment=sweep.experiment, filter_string=f"attributes.run_id IN ({ids})",
                                 tracking_uri=sweep.tracking_uri, cache_dir=cache).runs
    if sweep.plan_file is None:
        report = build_report(runs, out_dir=out)
        attach_to_mlflow(report, sweep.parent_run_id, tracking_uri=sweep.tracking_uri)
        summary = report.markdown
    else:  # a plan: each question's report (its own baseline and family of comparisons) and the referee's
        report = build_referee_report(load_plan(sweep.plan_file), runs, sweep.sweep_dir / "referee")
        tracking.log_artifacts(sweep.tracking_uri, sweep.parent_run_id, sweep.sweep_dir, [], ["referee"])
        summary = "\n".join(report.verdict_lines())
    # the parent run's description in the MLflow UI: the verdicts, above its children
    tracking.set_tags(sweep.tracking_uri, sweep.parent_run_id, {"mlflow.note.content": summary})
    return report
