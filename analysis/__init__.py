"""Significance analysis of r2d runs: load runs -> systems -> statistics -> rows -> tables, plots -> report, CLI.

Imports no torch and nothing from `r2d` but `r2d.schema` (the predictions-file format), so that
tables can be read and regenerated on a laptop. Modules, in data-path order:

- `analysis.errors`        `InputError`: bad input, naming the option at fault
- `analysis.runs`          load run directories (run.json + predictions CSV) into `Run`s
- `analysis.mlflow_runs`   load training runs from MLflow (cached artifacts) and their sweep parents
- `analysis.systems`       group runs into systems, match seeds and example ids: `MatchedSystems`
- `analysis.sufficient`    metrics as per-example sufficient statistics + finalize (mean, macro-F1, BLEU)
- `analysis.metrics`       the metrics a report can show (`MetricSpec`): columns, labels, statistics
- `analysis.resampling`    canonical array shapes; resample counts and swap masks; one matrix product per draw
- `analysis.intervals`     bootstrap distribution, percentile and BCa confidence intervals
- `analysis.significance`  paired tests on the same examples: paired bootstrap, randomisation, McNemar
- `analysis.across_seeds`  tests over seed-matched runs: paired t-test, Wilcoxon signed-rank
- `analysis.pseudo_values` a run's metric as per-example values (influence / jackknife pseudo-values)
- `analysis.crossed`       the default test across seeds (crossed seed x example model)
- `analysis.crossed_planning` its MDE and the seeds needed
- `analysis.simulation`    simulated studies with known truth, for calibration and power
- `analysis.power`         Holm / Bonferroni corrections, minimum detectable effect
- `analysis.sequential`    adaptive seeds: group-sequential boundaries and decisions per look (`evaluate_look`)
- `analysis.options`       the report's statistical options (`AnalysisOptions`), validated
- `analysis.selection`     choose the metrics and each stratum's baseline
- `analysis.rows`          compose the table's rows: estimates, CIs, comparisons, corrections, MDEs
- `analysis.tables`        the table as Markdown, LaTeX (booktabs) and CSV; footer and signatures
- `analysis.plots`         PNG plots on a headless Agg canvas
- `analysis.report`        `build_report(...)`, `write_report`, `attach_to_mlflow`, `report_for_sweep`
- `analysis.referee_plan`  the referee plan (plan.json): questions, baselines, trials (system_id, seed)
- `analysis.verdicts`      verdicts in words, computed from a report's rows
- `analysis.referee_page`  one document rendered as Markdown and as a self-contained HTML page
- `analysis.referee`       the referee report: `write_referee_report(plan, runs, out_dir)`
- `analysis.cli`           `python -m analysis report ...`, `python -m analysis referee ...`
"""

__version__ = "0.1.0"
