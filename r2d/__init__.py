"""Reason2Decide: two-stage rationale-driven training, sweeps and tracking.

Kept free of heavy imports so that `r2d.schema` can be read by `analysis/` on a laptop without torch.
"""

__version__ = "0.1.0"
