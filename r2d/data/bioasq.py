"""BioASQ Task B (official JSON): yes/no questions only; snippets as context, ideal_answer as rationale."""

from __future__ import annotations

import re
from pathlib import Path

from r2d.config import DataConfig
from r2d.data.base import (
    DataError,
    Dataset,
    Example,
    check_examples,
    check_labels,
    line_of,
    normalise_label,
    split_three_ways,
)
from r2d.data.pubmedqa import _parse_json, make_input
from r2d.textfile import read_text_file

LABELS = ["no", "yes"]  # the declared set: yes/no questions only


def _first(value: object) -> str:
    # exact_answer and ideal_answer are a string in some years' files, a list in others.
    if isinstance(value, list):
        return str(value[0]) if value else ""
    return "" if value is None else str(value)


def read_examples(path: Path) -> list[Example]:
    text = read_text_file(path, DataError)
    data = _parse_json(path, text)
    if not isinstance(data, dict) or not isinstance(data.get("questions"), list):
        raise DataError(f"{path}: expected an object with a 'questions' list (BioASQ Task B format)")
    examples = []
    for n, q in enumerate(data["questions"]):
        if not isinstance(q, dict):
            raise DataError(f"{path}: questions[{n}]: expected an object, got {type(q).__name__}")
        if q.get("type") != "yesno":
            continue
        qid = str(q.get("id", f"#{n}"))
        for key in ("body", "snippets", "exact_answer", "ideal_answer"):
            if key not in q:
                raise DataError(f"{path}: id {qid}: missing field {key}")
        if not isinstance(q["snippets"], list) or not all(isinstance(s, dict) for s in q["snippets"]):
            raise DataError(f"{path}: id {qid}: snippets: expected a list of objects with 'text'")
        contexts = [str(s.get("text", "")) for s in q["snippets"]]
        examples.append(
            Example(
                id=qid,
                input=make_input(q["body"], contexts),
                label=normalise_label(_first(q["exact_answer"])),
                rationale=_first(q["ideal_answer"]).strip(),
            )
        )
    if not examples:
        raise DataError(f"{path}: no yes/no questions")
    check_examples(examples, str(path))

    def where(ex: Example) -> str:
        line = line_of(text, rf'"id"\s*:\s*"{re.escape(ex.id)}"')  # the question's id: its exact_answer is near
        return f"{path}:{line}: id {ex.id}" if line else f"{path}: id {ex.id}"

    check_labels(examples, LABELS, "bioasq's labels", where)
    return examples


def load(cfg: DataConfig) -> Dataset:
    if not cfg.path:
        raise DataError("data.path: BioASQ is registration-only data; set it to the Task B JSON file")
    train, dev, test = split_three_ways(read_examples(Path(cfg.path)), cfg)
    return Dataset("bioasq", LABELS, train, dev, test)
