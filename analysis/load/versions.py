"""The versions a study's runs were made with: run.json's `environment`, or the MLflow tags `r2d.env.<name>`.

Two runs of one configuration can differ in their numbers when torch, transformers or r2d's own code
differ (issue 25), and nothing in `system_id` says so: it fingerprints the config, not the software.
So the report's signature names the versions, and a study whose runs were made with different versions
says so (stderr, the table's footer, and the notes naming the runs of each version).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from analysis.load.runs import Run

ENV_TAG = "r2d.env."
ALWAYS_SHOWN = ("torch", "transformers", "git_commit")  # in every signature, differing or not
SHORT_NAMES = {"git_commit": "r2d"}
NOT_VERSIONS = ("cpu_model",)  # hardware; the ISA switches (upper-case variable names) are not versions either
ABSENT = "none"  # a package the run's environment did not have


def environment_from_tags(tags: dict[str, str]) -> dict[str, str]:
    """run.json's `environment` rebuilt from an MLflow run's tags `r2d.env.<name>` (empty when it has none)."""
    return {key[len(ENV_TAG) :]: value for key, value in tags.items() if key.startswith(ENV_TAG)}


def run_versions(run: Run) -> dict[str, str] | None:
    """The run's recorded versions (python, packages, git_commit); None for a run that recorded none."""
    environment = run.record.get("environment")
    if not isinstance(environment, dict) or not environment:
        return None
    return {
        str(key): str(value)
        for key, value in environment.items()
        if value is not None and key not in NOT_VERSIONS and not str(key).isupper()
    }


def _runs(count: int) -> str:
    return f"{count} run" + ("s" if count > 1 else "")


def _short(key: str, value: str) -> str:
    return value[:7] if key == "git_commit" and value != ABSENT else value


@dataclass
class Versions:
    """Each recorded key's values across the runs, with the runs of each value; the runs that recorded none."""

    values: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # key -> value -> run names
    unrecorded: list[str] = field(default_factory=list)

    def differing(self) -> dict[str, list[str]]:
        """Key -> its distinct values, for the keys whose value is not the same in every recorded run."""
        return {key: sorted(values) for key, values in self.values.items() if len(values) > 1}

    def signature(self) -> str:
        """`torch:2.13.0+cpu|transformers:5.25.0|r2d:1c1a26b` (differing keys list every value, comma-separated);
        `versions:unrecorded` when no run recorded its environment."""
        if not self.values:
            return "versions:unrecorded"
        keys = [key for key in ALWAYS_SHOWN if key in self.values]
        keys += sorted(key for key in self.differing() if key not in keys)
        fields = [
            f"{SHORT_NAMES.get(key, key)}:{','.join(_short(key, value) for value in sorted(self.values[key]))}"
            for key in keys
        ]
        if self.unrecorded:
            fields.append(f"versions-unrecorded:{len(self.unrecorded)}")
        return "|".join(fields)

    def describe_differences(self) -> str:
        """One line: each differing key and its distinct values, with how many runs have each."""
        parts = []
        for key, values in self.differing().items():
            counted = ", ".join(f"{_short(key, value)} ({_runs(len(self.values[key][value]))})" for value in values)
            parts.append(f"{'r2d commit' if key == 'git_commit' else key} {counted}")
        return "; ".join(parts)

    def warning(self) -> str | None:
        """The one-line warning when the runs compared were made with different versions; None when they agree."""
        if not self.differing():
            return None
        return f"the runs compared were made with different versions: {self.describe_differences()}"

    def notes(self) -> list[str]:
        """Which runs have which version of each differing key, and how many runs recorded no versions."""
        notes = []
        for key, values in self.differing().items():
            named = "; ".join(
                f"{_short(key, value)}: {', '.join(sorted(self.values[key][value])[:6])}"
                + (" ..." if len(self.values[key][value]) > 6 else "")
                for value in values
            )
            notes.append(f"versions: {SHORT_NAMES.get(key, key)} differs across the runs ({named})")
        if self.unrecorded and self.values:
            notes.append(
                f"versions: {len(self.unrecorded)} run(s) recorded no environment (run.json from an older r2d), "
                f"e.g. {', '.join(sorted(self.unrecorded)[:3])}; their versions are unknown"
            )
        return notes


def collect_versions(runs: Iterable[Run]) -> Versions:
    """The versions of `runs` (those a report compares). A key a run's environment lacks counts as `none`."""
    recorded: list[tuple[str, dict[str, str]]] = []
    versions = Versions()
    for run in runs:
        found = run_versions(run)
        if found is None:
            versions.unrecorded.append(run.name)
        else:
            recorded.append((run.name, found))
    keys = sorted({key for _, found in recorded for key in found})
    for key in keys:
        for name, found in recorded:
            versions.values.setdefault(key, {}).setdefault(found.get(key, ABSENT), []).append(name)
    return versions
