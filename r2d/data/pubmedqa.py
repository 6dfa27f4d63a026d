"""PubMedQA PQA-L: 1,000 expert-labelled questions; the official 500-example test split.

Input = question + contexts, label = final_decision, rationale = LONG_ANSWER. Read from a local
`ori_pqal.json` (+ `test_ground_truth.json`); where a network exists and no local copy is given,
from the hub (`qiaojin/PubMedQA`, config `pqa_labeled`), which has the same 1,000 examples.
"""

from __future__ import annotations

import ast
import json
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
    stratified_split,
)
from r2d.textfile import read_text_file

LABELS = ["maybe", "no", "yes"]  # the declared set: a record with another final_decision is an error
HUB_ID, HUB_CONFIG = "qiaojin/PubMedQA", "pqa_labeled"
DEFAULT_DIRS = ("../shared/data/pubmedqa", "../../shared/data/pubmedqa")


def _contexts(value: object) -> list[str]:
    # The local file stores CONTEXTS as a list, some copies as the repr of a list.
    if isinstance(value, list):
        return [str(v) for v in value]
    if isinstance(value, str):
        try:
            parsed = ast.literal_eval(value)
            if isinstance(parsed, list):
                return [str(v) for v in parsed]
        except (ValueError, SyntaxError):
            pass
        return [value]
    if isinstance(value, dict) and "contexts" in value:  # the hub's nested form
        return [str(v) for v in value["contexts"]]
    return []


def make_input(question: str, contexts: list[str]) -> str:
    return f"question: {question.strip()} context: {' '.join(c.strip() for c in contexts)}"


def _read_json(path: Path) -> dict:
    return _parse_json(path, read_text_file(path, DataError))


def _parse_json(path: Path, text: str) -> dict:
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: line {err.lineno}: invalid JSON ({err.msg})") from None


def _from_records(records: dict[str, dict], source: str, text: str | None = None) -> list[Example]:
    """Examples of the records by PMID; `text`, the file's, locates a bad label at its line."""
    if not isinstance(records, dict):
        raise DataError(f"{source}: expected an object of records by PMID, got {type(records).__name__}")
    examples = []
    for pmid, rec in records.items():
        if not isinstance(rec, dict):
            raise DataError(f"{source}: id {pmid}: expected an object, got {type(rec).__name__}")
        for key in ("QUESTION", "CONTEXTS", "final_decision", "LONG_ANSWER"):
            if key not in rec:
                raise DataError(f"{source}: id {pmid}: missing field {key}")
        examples.append(
            Example(
                id=str(pmid),
                input=make_input(rec["QUESTION"], _contexts(rec["CONTEXTS"])),
                label=normalise_label(rec["final_decision"]),
                rationale=str(rec["LONG_ANSWER"]).strip(),
            )
        )
    check_examples(examples, source)

    def where(ex: Example) -> str:
        # the record's final_decision: the first after its PMID key
        line = line_of(text, rf'"{re.escape(ex.id)}"\s*:', r'"final_decision"\s*:') if text else None
        return f"{source}:{line}: id {ex.id}" if line else f"{source}: id {ex.id}"

    check_labels(examples, LABELS, "pubmedqa's labels", where)
    return examples


def local_dir(cfg: DataConfig) -> Path | None:
    if cfg.path:
        return Path(cfg.path)
    for candidate in DEFAULT_DIRS:
        if (Path(candidate) / "ori_pqal.json").exists():
            return Path(candidate)
    return None


def _hub_records() -> dict[str, dict]:
    import datasets  # heavy; only where a network exists

    rows = datasets.load_dataset(HUB_ID, HUB_CONFIG, split="train")
    return {
        str(r["pubid"]): {
            "QUESTION": r["question"],
            "CONTEXTS": r["context"],
            "final_decision": r["final_decision"],
            "LONG_ANSWER": r["long_answer"],
        }
        for r in rows
    }


def load(cfg: DataConfig) -> Dataset:
    root = local_dir(cfg)
    if root is None:
        # The hub copy has the same 1,000 examples but not the official test ids (those ship with
        # the reference repository's test_ground_truth.json): carve a stratified, seeded half.
        examples = _from_records(_hub_records(), f"{HUB_ID}/{HUB_CONFIG}")
        pool, test = stratified_split(examples, 0.5, cfg.split_seed)
        train, dev = stratified_split(pool, cfg.dev_fraction * 2, cfg.split_seed)
        return Dataset("pubmedqa", LABELS, train, dev, test)
    if root.is_file():
        root = root.parent
    source = str(root / "ori_pqal.json")
    text = read_text_file(root / "ori_pqal.json", DataError)
    examples = _from_records(_parse_json(root / "ori_pqal.json", text), source, text)
    truth_path = root / "test_ground_truth.json"
    truth = _read_json(truth_path)
    if not isinstance(truth, dict):
        raise DataError(f"{truth_path}: expected an object of labels by PMID, got {type(truth).__name__}")
    by_id = {ex.id: ex for ex in examples}
    for pmid, label in truth.items():
        if pmid not in by_id:
            raise DataError(f"{truth_path}: id {pmid}: not in {source}")
        if normalise_label(label) != by_id[pmid].label:
            raise DataError(f"{truth_path}: id {pmid}: label {label!r} disagrees with {source}")
    test = [ex for ex in examples if ex.id in truth]
    pool = [ex for ex in examples if ex.id not in truth]
    train, dev = stratified_split(pool, cfg.dev_fraction * 2, cfg.split_seed)  # 10% of all = 20% of pool
    return Dataset("pubmedqa", LABELS, train, dev, test)
