"""Reading one predictions CSV (`r2d.schema.PREDICTION_COLUMNS`), refusing any file that is not whole and clean.

A corrupt file must not become a report that silently uses fewer examples or seeds (issue 25): pandas
reads NUL bytes, a non-number in a metric column (as NaN) and a quote that swallows the following rows
(as one long field) without a word. So the file is parsed here by `csv` with every record's first
line known, and each problem is a `ValueError` naming the file and the line.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import numpy as np
import pandas as pd

from r2d.schema import PREDICTION_COLUMNS

TEXT_COLUMNS = ("id", "gold_label", "pred_label", "gold_rationale", "pred_rationale")
NUMERIC_COLUMNS = tuple(column for column in PREDICTION_COLUMNS if column not in TEXT_COLUMNS)
REQUIRED_COLUMNS = ("id", "gold_label", "pred_label", "correct")
_NA_STRINGS = frozenset(["", "nan", "NaN", "NA", "N/A", "null", "None"])
_BOOLEANS = {"true": 1.0, "false": 0.0}
# Control bytes no text writer puts in a CSV (tab, line ends, vertical tab and form feed excepted): binary junk.
_BINARY = re.compile(r"[\x00-\x08\x0e-\x1f]")


def read_predictions(path: str | Path, expected_rows: int | None = None) -> pd.DataFrame:
    """Read a predictions CSV: ids and labels as text (never NaN), metric columns as floats (empty = NaN).

    The file must be UTF-8 text without binary bytes, and whole: every row as many fields as the header,
    the last row ended by its line end (r2d's writer ends every row, so a file that stops without one was
    cut), every metric a number or empty, and `expected_rows` rows when the run recorded its example count
    (an unbalanced quote merges rows). Problems raise `ValueError` naming the file and the line.
    """
    text = decode_utf8(Path(path).read_bytes(), where=str(path))
    header, records, lines, ends = _parse(path, text)
    if expected_rows is not None and len(records) != expected_rows:
        _wrong_count(path, len(records), expected_rows, lines, ends)
    frame = pd.DataFrame(records, columns=header)
    missing = [column for column in REQUIRED_COLUMNS if column not in frame.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)} (see r2d.schema.PREDICTION_COLUMNS)")
    for column in TEXT_COLUMNS:
        if column not in frame.columns:
            frame[column] = ""
    for column in NUMERIC_COLUMNS:
        frame[column] = _numbers(path, frame[column], lines) if column in frame.columns else np.nan
    for column in ("gold_label", "pred_label"):
        frame[column] = frame[column].str.strip().str.lower()
    duplicated = frame["id"][frame["id"].duplicated()]
    if len(duplicated):
        raise ValueError(f"{path}: duplicate example ids, e.g. {', '.join(map(repr, duplicated[:3]))}")
    return frame.set_index("id", drop=False)


def decode_utf8(data: bytes, where: str | None = None) -> str:
    """`data` as UTF-8 text; `ValueError` saying where its first bad byte is (prefixed by `where`)."""
    prefix = f"{where}: " if where else ""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise ValueError(f"{prefix}not UTF-8 text ({error.reason} at byte {error.start}, line {line})") from None


def _wrong_count(path: str | Path, found: int, expected: int, lines: list[int], ends: list[int]) -> None:
    """Raise for a file with another row count than the run recorded, at the first record spanning lines if any
    (where a quote left open merged rows), else at the last row."""
    spanning = [(start, end) for start, end in zip(lines, ends, strict=True) if end > start]
    where = (
        f"line {spanning[0][0]} (a quoted field runs to line {spanning[0][1]})"
        if spanning
        else (f"line {ends[-1] if ends else 1}")
    )
    raise ValueError(
        f"{path}: {where}: {found} rows, but the run recorded {expected} examples "
        "(an unbalanced quote merging rows, or rows lost?)"
    )


def _parse(path: str | Path, text: str) -> tuple[list[str], list[list[str]], list[int], list[int]]:
    """(header, records, the line each record starts on, the line it ends on): the CSV checked record by record."""
    if not text.strip():
        raise ValueError(f"{path}: empty file; expected a header row ({', '.join(REQUIRED_COLUMNS)}, ...)")
    junk = _BINARY.search(text)
    if junk:
        line = text.count("\n", 0, junk.start()) + 1
        raise ValueError(f"{path}: line {line}: binary data (byte 0x{ord(junk.group()):02x}); expected text")
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""), strict=True)
    records: list[list[str]] = []
    lines: list[int] = []
    ends: list[int] = []
    start = 1
    try:
        header = next(reader)
        _check_header(path, header)
        while True:
            start = reader.line_num + 1  # a quoted field may span lines: the record's first line is known only now
            record = next(reader, None)
            if record is None:
                break
            if not record:
                continue  # a blank line, as pandas skips it
            _check_record(path, record, start, len(header), reader.line_num, text)
            records.append(record)
            lines.append(start)
            ends.append(reader.line_num)
    except csv.Error as error:  # e.g. the file ends inside a quoted field: a quote opened and never closed
        where = f"line {start}" + (f" (to line {reader.line_num})" if reader.line_num > start else "")
        raise ValueError(
            f"{path}: {where}: invalid CSV ({error}); an unbalanced quote, or a file cut inside a quoted field?"
        ) from None
    if not text.endswith("\n"):
        raise ValueError(
            f"{path}: line {reader.line_num}: the last row has no line end: the file was cut mid-row "
            "(truncated?); expected every row ended, as r2d writes them"
        )
    return header, records, lines, ends


def _check_header(path: str | Path, header: list[str]) -> None:
    repeated = sorted({column for column in header if header.count(column) > 1})
    if repeated:
        raise ValueError(f"{path}: line 1: column(s) {', '.join(repeated)} appear twice in the header")


def _check_record(path: str | Path, record: list[str], start: int, width: int, end: int, text: str) -> None:
    """Refuse a row pandas would read without a word: a short or long row (filled with NaN, or shifted), or a
    quoted field that runs over whole rows (a quote left open that another quote closes further down)."""
    spans = f" (to line {end}; an unbalanced quote?)" if end > start else ""
    if len(record) != width:
        raise ValueError(
            f"{path}: line {start}: {len(record)} fields, the header has {width}{spans}"
            + ("; the file ends mid-row (truncated?)" if not text.endswith("\n") else "")
        )
    if end > start:
        for field in (field for field in record if "\n" in field or "\r" in field):
            # a line inside a field with a whole row's delimiters (counted first: rationales often span lines)
            inner = [line for line in field.splitlines()[1:] if line.count(",") >= width - 1]
            if any(len(next(csv.reader([line]), [])) >= width for line in inner):
                raise ValueError(
                    f"{path}: line {start}: a quoted field runs to line {end} over lines that are whole rows "
                    "(an unbalanced quote swallowing the rows after it?)"
                )


def _numbers(path: str | Path, raw: pd.Series, lines: list[int]) -> pd.Series:
    """A metric column as floats; empty and NA strings are NaN, any other non-number is an error at its line."""
    text = raw.astype(str).str.strip()
    missing = text.isin(_NA_STRINGS)
    values = pd.to_numeric(text.where(~missing), errors="coerce").astype(np.float64)
    unparsed = values.isna() & ~missing
    if unparsed.any():  # True / False (a column of booleans) read as 1 / 0, as pandas would
        booleans = text[unparsed].str.lower().map(_BOOLEANS)
        values[booleans.index] = booleans
    bad = np.flatnonzero(values.isna().to_numpy() & ~missing.to_numpy())
    if len(bad):
        first = int(bad[0])
        raise ValueError(
            f"{path}: line {lines[first]}: column {raw.name} holds {raw.iloc[first][:40]!r}, not a number "
            f"({len(bad)} such value(s)); expected a number or empty"
        )
    return values
