"""--until-decided survives a killed driver, end to end with real trials on Ray (issue 23, item 6).

    nice -n 19 .venv/bin/python bench/bench_adaptive_resume.py                # killed, then --resume (~12 min)
    nice -n 19 .venv/bin/python bench/bench_adaptive_resume.py --reference    # and the same study uninterrupted

Runs the default study (sweeps/schedule_sensitivity.py, the CPU preset) with --until-decided into fresh
stores under --out. Once look 1 is saved and a trial of look 2 is FINISHED in MLflow, the driver's whole
process group gets SIGKILL (no chance to clean up); then the same command with --resume. With --reference,
first the same study runs uninterrupted in stores of its own, and the resumed study's decisions must be
the reference's, number for number (the same configs and seeds give the same predictions).

Checks, each printed and exiting 1 when one fails: the killed study's state says look 1 was done; the
resumed study keeps the design and look 1's decisions as they were saved (the spent error budget is not
restarted); no (configuration, seed) is FINISHED twice; no run is left RUNNING; the adaptive parent ends
FINISHED.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from r2d.run import tracking  # noqa: E402

SCRIPT = ROOT / "sweeps" / "schedule_sensitivity.py"


def command(out: Path, budget: str, *extra: str) -> list[str]:
    return [sys.executable, str(SCRIPT), "--until-decided", "--budget", budget, "--storage-path", str(out / "storage"),
            "--tracking-uri", f"sqlite:///{out / 'mlflow.db'}", *extra]


def finished_runs(db: Path) -> int:
    """FINISHED trial runs, read only (the driver owns the store)."""
    if not db.exists():
        return 0
    try:
        with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as con:
            return con.execute("SELECT COUNT(*) FROM runs r JOIN tags t ON t.run_uuid = r.run_uuid "
                               "WHERE r.status = 'FINISHED' AND t.key = 'r2d.seed'").fetchone()[0]
    except sqlite3.Error:  # tables not there yet, or locked for a moment
        return 0


def state_of(out: Path) -> dict | None:
    found = sorted((out / "storage").glob("schedule_sensitivity-adaptive-*/state.json"))
    return json.loads(found[-1].read_text()) if found else None


def run_and_kill(out: Path, budget: str) -> float:
    """The study until a look-2 trial is FINISHED, then SIGKILL to its process group; returns seconds."""
    started = time.time()
    with open(out / "killed.log", "w") as log:
        proc = subprocess.Popen(command(out, budget), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        at_look_1 = None
        while proc.poll() is None:
            state = state_of(out)
            if at_look_1 is None and state and state["looks_done"] == 1:
                at_look_1 = finished_runs(out / "mlflow.db")
            if at_look_1 is not None and finished_runs(out / "mlflow.db") > at_look_1:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                return time.time() - started
            time.sleep(1)
    raise SystemExit(f"the study ended (rc {proc.returncode}) before look 2 had a finished trial: {out / 'killed.log'}")


def runs_of(out: Path) -> list:
    """Every run of the study (called after the drivers: a client would migrate the store under a running one)."""
    return tracking.search_runs(f"sqlite:///{out / 'mlflow.db'}", "schedule_sensitivity", "", max_results=5000)


def decisions(state: dict) -> dict[str, list]:
    """Per comparison: status, closing look, seeds used and each look's mean and sd (rounded to 1e-9)."""
    out = {}
    for text in state["states"].values():
        for c in json.loads(text)["comparisons"]:
            looks = [(round(look["mean"], 9), round(look["sd"], 9)) for look in c["looks"]]
            out[f"{c['metric']} {c['system']}"] = [c["status"], c["closed_at_look"], c["seeds_used"], looks]
    return out


def look_1(state: dict) -> dict[str, list]:
    """Per comparison: look 1's mean and sd, and whether it closed there (what --resume must keep)."""
    return {key: [looks[:1], closed_at == 1] for key, (_, closed_at, _, looks) in decisions(state).items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=f"outputs/bench-adaptive-resume-{time.strftime('%Y%m%d-%H%M%S')}")
    parser.add_argument("--budget", default="20m")
    parser.add_argument("--reference", action="store_true", help="also run the study uninterrupted, and compare")
    args = parser.parse_args()
    out = (ROOT / args.out).resolve()
    if out.exists():
        raise SystemExit(f"--out {out}: exists; the bench needs fresh stores")
    checks: list[tuple[str, bool]] = []
    reference = None
    if args.reference:
        started = time.time()
        done = subprocess.run(command(out / "reference", args.budget), cwd=ROOT, capture_output=True, text=True)
        console = out / "reference" / "console.log"
        console.parent.mkdir(parents=True, exist_ok=True)
        console.write_text(done.stdout + done.stderr)
        if done.returncode != 0:
            raise SystemExit(f"the uninterrupted study failed (rc {done.returncode}): {console}")
        reference = state_of(out / "reference")
        print(f"uninterrupted: {time.time() - started:.0f} s, {reference['looks_done']} looks")
    killed = out / "killed"
    killed.mkdir(parents=True)
    took = run_and_kill(killed, args.budget)
    before = state_of(killed)
    print(f"killed after {took:.0f} s: looks done {before['looks_done']}, "
          f"{finished_runs(killed / 'mlflow.db')} trials FINISHED")
    checks.append(("the killed study's state says look 1 is done", before["looks_done"] == 1))
    started = time.time()
    done = subprocess.run(command(killed, args.budget, "--resume"), cwd=ROOT, capture_output=True, text=True)
    (killed / "resume.log").write_text(done.stdout + done.stderr)
    print(f"--resume: rc {done.returncode}, {time.time() - started:.0f} s\n\n{done.stdout[-2500:]}")
    after = state_of(killed)
    runs = runs_of(killed)
    trials = [(r.data.tags["r2d.system_id"], r.data.tags["r2d.seed"]) for r in runs
              if r.info.status == "FINISHED" and "r2d.seed" in r.data.tags]
    adaptive = [r for r in runs if r.data.tags.get("r2d.kind") == "adaptive"]
    checks += [
        ("--resume ends with rc 0", done.returncode == 0),
        ("the resumed study keeps its design", after["design"] == before["design"]),
        ("look 1's decisions are kept as saved", look_1(after) == look_1(before)),
        ("no (configuration, seed) FINISHED twice", len(trials) == len(set(trials))),
        ("no run left RUNNING", not [r for r in runs if r.info.status == "RUNNING"]),
        ("the adaptive parent ends FINISHED", [r.info.status for r in adaptive] == ["FINISHED"]),
    ]
    print(f"trials FINISHED: {len(trials)}; runs KILLED: {sum(r.info.status == 'KILLED' for r in runs)}")
    if reference is not None:
        same = decisions(after) == decisions(reference)
        checks.append(("the resumed decisions equal the uninterrupted study's, number for number", same))
    for name, ok in checks:
        print(f"{'ok ' if ok else 'FAIL'} {name}")
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
