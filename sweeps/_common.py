"""What the study scripts share: the repository root, so presets resolve from any working directory."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def preset(name: str) -> str:
    return str(ROOT / "configs" / name)
