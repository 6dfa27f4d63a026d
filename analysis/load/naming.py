"""Naming systems: a system's display name lists only the settings that tell the study's systems apart.

A system is one configuration, fingerprinted by run.json's `system_id` over `settings` (every resolved
setting that can change a result, flat dotted keys). Its name shows the variant (always), then each setting
that differs across the study's systems *and* is not fixed by the variant (sft's `stage2.alpha` is
1.0 because it is sft: the variant already says so), under its shortest unambiguous key:
`constant_mix cap=0.5`, `r2d shape=linear transition=0.6`, `r2d stage2.lr=0.001`.
"""

from __future__ import annotations

from collections.abc import Sequence

# The order settings are shown in; any other differing setting follows, alphabetically, then the source.
DISPLAY_ORDER = (
    "variant",
    "stage2.schedule.shape",
    "stage2.schedule.transition",
    "stage2.schedule.cap",
    "stage2.schedule.warmup",
    "stage2.schedule.steepness",
    "stage2.alpha",
)
SOURCE_KEYS = ("data.rationale_source", "rationale_source")
ALIASES = {"rationale_source": "source", "data.rationale_source": "source"}


def differing_keys(settings: Sequence[dict[str, object]]) -> list[str]:
    """The keys whose value is not the same in every settings dict (a missing key counts as None)."""
    keys = list(dict.fromkeys(key for one in settings for key in one))
    return [key for key in keys if len({repr(one.get(key)) for one in settings}) > 1]


def display_keys(settings: Sequence[dict[str, object]]) -> list[str]:
    """The settings that name the systems: those that differ, minus those the variant determines.

    A setting is determined by the variant when, in this study, every system of one variant has the
    same value of it; then the variant's name already tells those systems apart.
    """
    differing = differing_keys(settings)
    if "variant" in differing:
        free = [key for key in differing if key != "variant" and not _fixed_by_variant(settings, key)]
        differing = ["variant", *free]
    return sorted(differing, key=_display_rank)


def _fixed_by_variant(settings: Sequence[dict[str, object]], key: str) -> bool:
    values: dict[str, set[str]] = {}
    for one in settings:
        values.setdefault(repr(one.get("variant")), set()).add(repr(one.get(key)))
    return all(len(seen) == 1 for seen in values.values())


def _display_rank(key: str) -> tuple[int, str]:
    for dotted in (key, f"stage2.schedule.{key}", f"stage2.{key}"):  # older runs' `system` keys are short
        if dotted in DISPLAY_ORDER:
            return DISPLAY_ORDER.index(dotted), key
    return (len(DISPLAY_ORDER) + (1 if key in SOURCE_KEYS else 0), key)


def short_keys(keys: Sequence[str], all_keys: Sequence[str]) -> dict[str, str]:
    """Each dotted key's shortest suffix that no other key of `all_keys` ends with (`stage2.schedule.cap` -> `cap`,
    but `stage2.lr` stays whole when `stage1.lr` exists); the rationale source is `source`."""
    short = {}
    for key in keys:
        parts = key.split(".")
        candidate = key
        for length in range(1, len(parts) + 1):
            candidate = ".".join(parts[-length:])
            if sum(1 for other in all_keys if other == candidate or other.endswith("." + candidate)) <= 1:
                break
        short[key] = ALIASES.get(key, candidate)
    return short


def format_setting(value: object) -> str:
    """A setting's value as shown in a name: floats without trailing zeros."""
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def name_from(settings: dict[str, object], keys: Sequence[str], short: dict[str, str]) -> str:
    """`variant key=value ...` over `keys`: the variant always and first; settings the system lacks are skipped."""
    parts = [str(settings.get("variant"))]
    for key in keys:
        if key != "variant" and settings.get(key) is not None:
            parts.append(f"{short.get(key, key)}={format_setting(settings[key])}")
    return " ".join(parts)
