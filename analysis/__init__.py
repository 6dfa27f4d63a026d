"""Significance analysis of r2d runs: load -> stats -> tables -> report / referee, and the CLI.

Imports no torch and nothing from `r2d` but `r2d.schema` (the predictions-file format), so that
tables can be read and regenerated on a laptop. Rooms, each importing only itself and those above it
in this list:

- `analysis.errors`, `analysis.metrics`  `InputError`; the metrics a report can show (`MetricSpec`)
- `analysis.stats`       pure vectorised statistics: sufficient statistics, resampling, bootstrap CIs,
                         paired tests, tests across seeds, the crossed seed x example test, power, simulation
- `analysis.load`        run directories and MLflow runs -> `Run`s -> systems (`MatchedSystems`), names, health
- `analysis.options`     the report's statistical options (`AnalysisOptions`), validated
- `analysis.tables`      rows (estimates, CIs, comparisons, corrections, MDEs), Markdown / LaTeX / CSV, plots
- `analysis.sequential`  adaptive seeds: group-sequential boundaries and decisions per look (`evaluate_look`)
- `analysis.report`      `build_report(...)`, `write_report`, `attach_to_mlflow`, `report_for_sweep`
- `analysis.referee`     plan.json -> per-question reports -> verdicts -> referee.md / referee.html
- `analysis.cli`         `python -m analysis report ...`, `python -m analysis referee ...`
"""

__version__ = "0.1.0"
