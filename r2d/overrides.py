"""Dotted overrides (`--set key.path=value`, and options such as `--workers 2` that set one key), and
the one-line `ConfigError` that they and validation raise, told against the option that set the key.

Kept apart from r2d/config.py (the sections and their resolution), which applies them."""

from __future__ import annotations

from typing import Any

import yaml


class ConfigError(ValueError):
    """A bad config value; the message is one line naming the key path (or file) and what was expected.

    `keys` are the dotted keys the error is about (the first is the one named) and `reason` the
    message without its source, so that `blame` can tell it against the option that set a key."""

    def __init__(self, message: str, keys: tuple[str, ...] = (), reason: str | None = None):
        super().__init__(message)
        self.keys, self.reason = keys, message if reason is None else reason

    @classmethod
    def about(cls, keys: tuple[str, ...], what: str) -> ConfigError:
        """`keys[0]: what`, about these keys (see `blame`)."""
        return cls(f"{keys[0]}: {what}", keys, what)


class KeysError(ValueError):
    """Raised by a check across keys (a model validator): `keys` are the keys involved, the first named."""

    def __init__(self, keys: tuple[str, ...], what: str):
        super().__init__(what)
        self.keys = keys


def _related(a: str, b: str) -> bool:
    return a == b or a.startswith(b + ".") or b.startswith(a + ".")


def blame(err: ConfigError, origins: list[tuple[str, str]]) -> ConfigError:
    """The error told against the option that set one of its keys (the last such in `origins`, a list
    of (dotted key, option as typed)); unchanged if no option set one."""
    for key, label in reversed(origins):
        if err.keys and any(_related(key, k) for k in err.keys):
            named = "" if key == err.keys[0] else f"{err.keys[0]}: "
            return ConfigError(f"{label}: {named}{err.reason}", err.keys, err.reason)
    return err


def parse_override(text: str) -> tuple[list[str], Any]:
    """`a.b.c=value` -> (["a","b","c"], value parsed as YAML: numbers, booleans, null, lists)."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected key.path=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or "" in key.split("."):
        raise ConfigError(f"--set {text!r}: expected key.path=value (an empty key or key part)")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.split("."), value


def set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    """data["a"]["b"]["c"] = value for "a.b.c", creating sections; ConfigError if a parent is a value."""
    *parents, leaf = dotted.split(".")
    node = data
    for i, part in enumerate(parents):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{dotted}: {'.'.join(parents[: i + 1])} is not a section")
        node = child
    node[leaf] = value


# An option other than --set that sets one key: {option as typed: (dotted key, value)}, e.g.
# {"--workers 2": ("resources.num_workers", 2)}. Its value is taken as given, not parsed as YAML.
Options = dict[str, tuple[str, Any]]


def _assignments(overrides: list[str], options: Options | None) -> list[tuple[str, str, Any]]:
    """(option as typed, dotted key, value) of every override, in the order they apply: --set, then options."""
    out = []
    for text in overrides:
        path, value = parse_override(text)
        out.append((f"--set {text}", ".".join(path), value))
    return out + [(label, key, value) for label, (key, value) in (options or {}).items()]


def override_origins(overrides: list[str], options: Options | None = None) -> list[tuple[str, str]]:
    """(dotted key, option as typed) of every override: what `blame` tells an error against."""
    return [(key, label) for label, key, _ in _assignments(overrides, options)]


def apply_overrides(data: dict[str, Any], overrides: list[str], options: Options | None = None) -> dict[str, Any]:
    """Apply dotted overrides to a raw config dict (validation comes after, on the whole)."""
    for label, key, value in _assignments(overrides, options):
        try:
            set_dotted(data, key, value)
        except ConfigError as err:
            raise ConfigError(f"{label}: {str(err).split(': ', 1)[1]}") from None
    return data
