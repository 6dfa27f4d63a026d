"""Reading the text files a user names (configs, data), with one-line errors that name the file.

The error class is the caller's (`ConfigError`, `DataError`), so each command reports it as its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def read_text_file(path: Path, error: type[ValueError], what: str = "file") -> str:
    """A UTF-8 text file (a leading BOM dropped), or `error` with one line naming the file: missing,
    a directory, unreadable, or not UTF-8 (the byte offset and line of the first bad byte)."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise error(f"{path}: {what} not found") from None
    except IsADirectoryError:
        raise error(f"{path}: is a directory, expected a {what}") from None
    except OSError as err:
        raise error(f"{path}: cannot read the {what} ({err.strerror or err})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        raise error(f"{path}: not UTF-8 text ({err.reason} at byte {err.start}, line {line})") from None
    return text.removeprefix("\ufeff")


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a key given twice in one mapping is an error (not: the last wins)."""


def _unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: set[str] = set()
    for key_node, _ in node.value:
        if isinstance(key_node, yaml.ScalarNode):
            if key_node.value in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key_node.value!r}",
                                                        key_node.start_mark)
            seen.add(key_node.value)
    return loader.construct_mapping(node, deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def yaml_problem(err: yaml.YAMLError) -> str:
    """The parser's own account in one line: line, problem and what it was parsing."""
    mark, context_mark = getattr(err, "problem_mark", None), getattr(err, "context_mark", None)
    problem = getattr(err, "problem", None) or (str(err).strip().splitlines() or [type(err).__name__])[0]
    if getattr(err, "context", None):
        problem += f", {err.context}" + (f" started on line {context_mark.line + 1}" if context_mark else "")
    return (f"line {mark.line + 1}: " if mark else "") + f"invalid YAML ({problem})"


def read_yaml_mapping(path: Path, error: type[ValueError]) -> dict[str, Any]:
    """A YAML config file's top-level mapping, or `error` naming the file (and line): as
    `read_text_file`, or not YAML, a key given twice, empty, or not a mapping."""
    text = read_text_file(path, error, "config file")
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader: plain data only
    except yaml.YAMLError as err:
        raise error(f"{path}: {yaml_problem(err)}") from None
    if data is None:
        raise error(f"{path}: empty config file (expected a mapping of sections, e.g. stage2: {{max_steps: 100}})")
    if not isinstance(data, dict):
        raise error(f"{path}: expected a mapping of sections at the top level, got a {type(data).__name__}")
    return data
