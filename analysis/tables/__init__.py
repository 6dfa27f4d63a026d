"""A report's rows and their renderings.

- `rows`      one `ComparisonRow` per (system, metric): estimates, CIs, tests, corrections, MDEs
- `seedplan`  the seeds each row is computed over
- `decide`    never print a number that cannot be true; undecided rows in words, seeds needed
- `render`    Markdown, LaTeX and CSV tables with footer and signatures; `plots` the PNGs
"""
