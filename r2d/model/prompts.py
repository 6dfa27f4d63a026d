"""The three prompt templates of DESIGN section 1, in one place."""

from __future__ import annotations


def predict(x: str) -> str:
    return f"predict: {x}"


def explain(x: str) -> str:
    return f"explain: {x}"


def explain_given(label: str, x: str) -> str:
    return f"given label: {label}, explain: {x}"
