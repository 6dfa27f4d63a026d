"""Pure, vectorised statistics (no I/O): sufficient statistics, resampling, intervals, tests, power.

- `sufficient`, `resampling`, `intervals`      per-example statistics -> scores; bootstrap draws; percentile/BCa CIs
- `significance`, `across_seeds`               paired tests on examples; tests over seed-matched runs
- `pseudo_values`, `crossed`, `crossed_planning`, `pooled`   the crossed seed x example test, its MDE and seeds
- `power`, `simulation`                        corrections and MDE; simulated studies with known truth
"""
