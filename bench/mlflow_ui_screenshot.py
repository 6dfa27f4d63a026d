"""Open a sweep's experiment in the MLflow UI in headless Chromium, as a user clicking it would: a
screenshot, and what the page shows (the runs table with the sweep's parent and children, or not).

    .venv/bin/python bench/mlflow_ui_screenshot.py --tracking-uri sqlite:///mlflow.db \\
        --experiment schedule_sensitivity [--out outputs/mlflow-ui]

Starts `mlflow ui` on 127.0.0.1 (a free port) over the store, waits for /health, loads
`/#/experiments/<id>` (what clicking the experiment opens) with Chromium's --dump-dom and
--screenshot, prints whether the parent run's name and its children's names are on the page and
whether the page is a traces view, then stops the server by its PID. Chromium is not a project
dependency (`apt-get install chromium`).

Verified 2026-12-05 (MLflow 3.17.2, 2-core AMD EPYC VM), a store with one parent and two children:
without --query the experiment opens on the GenAI Overview (parent 0 of 1 on the page); with
`--query workflowType=machine_learning` it opens on the Runs table (parent 1 of 1; children are folded
under the parent, so their names are not in the DOM). The experiment tag `mlflow.experimentKind` is
ignored by 3.17.2's landing logic: the global workflowType (URL query, else localStorage) decides.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from mlflow import MlflowClient

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, timeout: float = 90) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"{url}: no answer in {timeout:.0f} s")


def chromium(browser: str, url: str, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=20000",
                           "--window-size=1400,900", *flags, url], capture_output=True, text=True, timeout=180)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tracking-uri", required=True)
    ap.add_argument("--experiment", required=True)
    ap.add_argument("--out", default="outputs/mlflow-ui")
    ap.add_argument("--query", default="",
                    help="appended to the experiment URL, e.g. 'workflowType=machine_learning'")
    args = ap.parse_args()
    browser = next((path for name in BROWSERS if (path := shutil.which(name))), None)
    if browser is None:
        print("no Chromium on PATH (apt-get install chromium)", file=sys.stderr)
        return 2
    client = MlflowClient(args.tracking_uri)
    experiment = client.get_experiment_by_name(args.experiment)
    if experiment is None:
        print(f"--experiment {args.experiment}: not in {args.tracking_uri}", file=sys.stderr)
        return 2
    runs = client.search_runs([experiment.experiment_id], max_results=200)
    parents = [r for r in runs if r.data.tags.get("r2d.kind") in ("sweep", "adaptive")]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", args.tracking_uri,
                               "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for(f"http://127.0.0.1:{port}/health")
        url = f"http://127.0.0.1:{port}/#/experiments/{experiment.experiment_id}"
        url += f"?{args.query}" if args.query else ""
        dom = chromium(browser, url, "--dump-dom").stdout
        chromium(browser, url, f"--screenshot={out / 'experiment.png'}")
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the server and its worker, by the group of the PID started
        server.wait(timeout=30)
    (out / "experiment.html").write_text(dom)
    names = [r.info.run_name for r in parents]
    children = [r.info.run_name for r in runs if r not in parents]
    print(f"experiment kind tag: {experiment.tags.get('mlflow.experimentKind')}")
    print(f"parent run(s) on the page: {sum(n in dom for n in names)} of {len(names)}")
    print(f"child runs on the page: {sum(n in dom for n in set(children))} of {len(set(children))}")
    print(f"a traces view: {'yes' if 'No traces' in dom or 'traces-table' in dom else 'no'}")
    print(f"screenshot: {out / 'experiment.png'}; page: {out / 'experiment.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
