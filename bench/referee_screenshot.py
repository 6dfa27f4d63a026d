"""Render a referee report (referee.html) and screenshot it with headless Chromium, to look at the page.

    .venv/bin/python bench/referee_screenshot.py --plan SWEEP/plan.json --runs SWEEP/runs [--out DIR]
    .venv/bin/python bench/referee_screenshot.py            # a simulated study (tests/test_analysis_referee.py)

Writes `<out>/referee.md`, `<out>/referee.html` (self-contained) and `<out>/referee.png`, the page as
Chromium draws it at 1280 x 4000 px (`chromium --headless --screenshot=... --window-size=1280,4000`).
Chromium is not a dependency of the project (and not in CI): without it the script says so and stops
after the HTML. Options: `--resamples` (default 1000), `--chromium PATH`, `--height` (px).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.load.runs import load_run_dirs  # noqa: E402
from analysis.referee.report import build_referee_report, load_plan  # noqa: E402

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def simulated_study(root: Path) -> tuple[Path, list[Path]]:
    """The test suite's simulated study (three questions, shared trials, one missing): plan.json and runs/."""
    from tests.test_analysis_referee import plan_data, write_study  # the test's study, not a second copy

    system_ids = write_study(root / "runs")
    plan_path = root / "plan.json"
    plan_path.write_text(json.dumps(plan_data(system_ids), indent=1))
    return plan_path, [root / "runs"]


def screenshot(html: Path, png: Path, browser: str, width: int = 1280, height: int = 4000) -> None:
    """Chromium draws `html` (file://, no network needed) into `png`."""
    command = [
        browser,
        "--headless",
        "--no-sandbox",  # root in a container: Chromium refuses its sandbox
        "--disable-gpu",
        "--hide-scrollbars",
        f"--screenshot={png}",
        f"--window-size={width},{height}",
        html.resolve().as_uri(),
    ]
    subprocess.run(command, check=True, capture_output=True, timeout=120)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plan", help="plan.json (default: a simulated study)")
    parser.add_argument("--runs", nargs="+", metavar="DIR", help="run directories (with --plan)")
    parser.add_argument("--out", default="outputs/referee-screenshot", help="output directory")
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument(
        "--chromium", help=f"the browser's executable (default: the first of {', '.join(BROWSERS)} on PATH)"
    )
    parser.add_argument("--height", type=int, default=4000, help="window height in px (default 4000)")
    arguments = parser.parse_args(argv)
    if bool(arguments.plan) != bool(arguments.runs):
        parser.error("give both --plan and --runs, or neither (a simulated study)")
    out = Path(arguments.out)
    with tempfile.TemporaryDirectory() as scratch:
        plan_path, runs = (Path(arguments.plan), arguments.runs) if arguments.plan else simulated_study(Path(scratch))
        plan = load_plan(plan_path)
        report = build_referee_report(plan, load_run_dirs(runs), out, n_resamples=arguments.resamples)
    html = out / "referee.html"
    print(f"wrote {html} ({html.stat().st_size / 1e6:.1f} MB) and {len(report.files) - 1} other files")
    browser = arguments.chromium or next((path for name in BROWSERS if (path := shutil.which(name))), None)
    if browser is None:
        print("no Chromium on PATH (apt-get install chromium, or --chromium PATH): no screenshot", file=sys.stderr)
        return 1
    png = out / "referee.png"
    screenshot(html, png, browser, height=arguments.height)
    print(f"screenshot: {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
