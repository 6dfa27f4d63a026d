"""One document, two renderings: Markdown (`referee.md`) and a self-contained HTML page (`referee.html`).

The referee report is built as a list of blocks (headings, paragraphs, lists, tables, images, code)
and rendered twice, so the two files say the same thing. The HTML opens offline: inline CSS, the
plots embedded as base64 `data:` PNGs, no script, font or stylesheet fetched from anywhere. Text may
use two inline Markdown marks, `code` and **bold**; nothing else is interpreted.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Heading:
    level: int
    text: str


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Quote:
    text: str


@dataclass(frozen=True)
class Items:
    """A bulleted list; `classes` (one per item, optional) style the HTML items (decided, undecided...)."""

    items: tuple[str, ...]
    classes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]
    align: tuple[str, ...]  # "left" | "right", one per column
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class Image:
    path: str  # relative to the output directory (Markdown links it, HTML embeds it)
    alt: str


@dataclass(frozen=True)
class Code:
    lines: tuple[str, ...]


Block = Heading | Paragraph | Quote | Items | Table | Image | Code


def parse_markdown_table(lines: Sequence[str]) -> Table:
    """A pipe table (`| a | b |`, then the alignment row `|:--|--:|`, then the body) as a `Table`."""
    cells = [tuple(cell.strip() for cell in line.strip().strip("|").split("|")) for line in lines]
    header, marks, body = cells[0], cells[1], cells[2:]
    align = tuple("right" if mark.endswith(":") and not mark.startswith(":") else "left" for mark in marks)
    return Table(header, align, tuple(body))


def split_table(table: Table, keep: int = 2, group: int = 2) -> list[Table]:
    """A wide table as several: the first `keep` columns, then each `group` of columns (one metric's value and Δ)."""
    width = len(table.header)
    if width <= keep + 2 * group:
        return [table]
    tables = []
    for start in range(keep, width, group):
        columns = list(range(keep)) + list(range(start, min(start + group, width)))
        tables.append(
            Table(
                tuple(table.header[i] for i in columns),
                tuple(table.align[i] for i in columns),
                tuple(tuple(row[i] for i in columns if i < len(row)) for row in table.rows),
            )
        )
    return tables


def table_lines(markdown: str) -> list[str]:
    """The pipe table at the top of a report's Markdown (the lines before the first non-table line)."""
    lines = []
    for line in markdown.splitlines():
        if not line.startswith("|"):
            break
        lines.append(line)
    return lines


def to_markdown(blocks: Sequence[Block]) -> str:
    """The blocks as Markdown, a blank line between blocks."""
    parts = []
    for block in blocks:
        if isinstance(block, Heading):
            parts.append("#" * block.level + " " + block.text)
        elif isinstance(block, Paragraph):
            parts.append(block.text)
        elif isinstance(block, Quote):
            parts.append("> " + block.text)
        elif isinstance(block, Items):
            parts.append("\n".join(f"- {item}" for item in block.items))
        elif isinstance(block, Table):
            marks = ["--:" if side == "right" else ":--" for side in block.align]
            lines = ["| " + " | ".join(block.header) + " |", "|" + "|".join(marks) + "|"]
            parts.append("\n".join(lines + ["| " + " | ".join(row) + " |" for row in block.rows]))
        elif isinstance(block, Image):
            parts.append(f"![{block.alt}]({block.path})")
        elif isinstance(block, Code):
            parts.append("\n".join(["```", *block.lines, "```"]))
    return "\n\n".join(parts) + "\n"


_CODE = re.compile(r"`([^`]+)`")
_BOLD = re.compile(r"\*\*(.+?)\*\*")


def inline(text: str) -> str:
    """Escaped HTML of `text`, with `code` and **bold** marked up."""
    escaped = html.escape(text, quote=False)
    return _BOLD.sub(r"<strong>\1</strong>", _CODE.sub(r"<code>\1</code>", escaped))


STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d2329;background:#fff;margin:0}
main{max-width:1180px;margin:0 auto;padding:24px 32px 64px;line-height:1.5}
h1{font-size:1.7em;border-bottom:2px solid #1d2329;padding-bottom:6px}
h2{font-size:1.35em;margin-top:2.2em;border-bottom:1px solid #ccd;padding-bottom:4px}
h3{font-size:1.12em;margin-top:1.8em}
blockquote{margin:0.8em 0;padding:6px 14px;border-left:4px solid #8aa;background:#f4f7f8;font-style:italic}
code{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:0.9em;background:#f1f1f4;padding:0 3px}
pre{background:#f6f6f8;border:1px solid #e2e2e8;padding:8px 10px;font-size:12px;white-space:pre-wrap;
word-break:break-all}
.table{overflow-x:auto;margin:0.8em 0}
table{border-collapse:collapse;font-size:13px;font-variant-numeric:tabular-nums}
th,td{border:1px solid #d4d6dc;padding:4px 8px;vertical-align:top}
th{background:#eef0f4}
td.right,th.right{text-align:right;white-space:nowrap}
td.wrap{white-space:normal;min-width:16em;max-width:34em}
tr:nth-child(even) td{background:#fafbfc}
figure{display:inline-block;width:48%;margin:4px 0.5%;vertical-align:top}
img{width:100%;height:auto;border:1px solid #e4e4ea}
li{margin:3px 0}
li.decided{border-left:4px solid #2e8b57;padding-left:8px;list-style:none;margin-left:-18px}
li.undecided{border-left:4px solid #a0a4ab;padding-left:8px;list-style:none;margin-left:-18px}
li.unhealthy{border-left:4px solid #d9822b;padding-left:8px;list-style:none;margin-left:-18px}
li.summary{border-left:4px solid #3b6ea8;padding-left:8px;list-style:none;margin-left:-18px}
"""


def to_html(blocks: Sequence[Block], base_dir: str | Path, title: str) -> str:
    """The blocks as one HTML page that needs nothing else: images read from `base_dir` and embedded."""
    body = [_html_block(block, Path(base_dir)) for block in blocks]
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n"
        + "\n".join(body)
        + "\n</main>\n</body>\n</html>\n"
    )


def _html_block(block: Block, base_dir: Path) -> str:
    if isinstance(block, Heading):
        return f"<h{block.level}>{inline(block.text)}</h{block.level}>"
    if isinstance(block, Paragraph):
        return f"<p>{inline(block.text)}</p>"
    if isinstance(block, Quote):
        return f"<blockquote>{inline(block.text)}</blockquote>"
    if isinstance(block, Items):
        classes = block.classes or ("",) * len(block.items)
        items = [
            f'<li class="{css}">{inline(item)}</li>' if css else f"<li>{inline(item)}</li>"
            for item, css in zip(block.items, classes, strict=True)
        ]
        return "<ul>\n" + "\n".join(items) + "\n</ul>"
    if isinstance(block, Table):
        return _html_table(block)
    if isinstance(block, Image):
        return _html_image(block, base_dir)
    if isinstance(block, Code):
        return "<pre>" + html.escape("\n".join(block.lines), quote=False) + "</pre>"
    raise TypeError(f"not a block: {block!r}")


def _html_table(table: Table) -> str:
    def cell(tag: str, text: str, side: str) -> str:
        css = side + (" wrap" if len(text) > 40 else "")  # long words (undecided...) wrap; numbers stay on a line
        return f'<{tag} class="{css}">{inline(text)}</{tag}>'

    head = "".join(cell("th", text, side) for text, side in zip(table.header, table.align, strict=True))
    rows = [
        "<tr>" + "".join(cell("td", text, side) for text, side in zip(row, table.align, strict=False)) + "</tr>"
        for row in table.rows
    ]
    return (
        f'<div class="table"><table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n'
        + "\n".join(rows)
        + ("\n</tbody></table></div>")
    )


def _html_image(image: Image, base_dir: Path) -> str:
    path = base_dir / image.path
    if not path.is_file():
        return f"<p><em>(plot missing: {html.escape(image.path)})</em></p>"
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<figure><img alt="{html.escape(image.alt)}" src="data:image/png;base64,{data}"></figure>'
