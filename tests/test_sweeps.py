"""Sweeps end to end, as a user runs them: the study scripts against a running local Ray cluster
(two nodes started by the test with `ray start`), logging to a real MLflow store."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest

from r2d.config import read_config
from r2d.run.distributed import LOCAL_TRAIN_ENV, SHARED_FILESYSTEM_ENV
from r2d.sweep.plan import plan_trials

from .conftest import ROOT, free_port, stop_pid

sys.path.insert(0, str(ROOT / "sweeps"))
import referee  # noqa: E402  (the script's module: its plan is the test's expectation)

pytestmark = pytest.mark.slow

TINY = [
    "data.triage.size=300", "data.max_eval_examples=24", "model.tiny.d_model=32", "model.tiny.d_ff=64",
    "model.tiny.d_kv=8", "model.tiny.num_heads=2", "model.tiny.num_layers=1", "model.tiny.num_decoder_layers=1",
    "model.tiny.dropout_rate=0.0", "stage1.max_steps=4", "stage1.batch_size=8", "stage1.eval_every=2",
    "stage2.max_steps=6", "stage2.batch_size=8", "stage2.eval_every=3", "evaluation.bertscore.enabled=false",
    "evaluation.max_rationale_tokens=8", "resources.max_failures=0",
]


# A throwaway cluster on 127.0.0.1 only: no token auth (a token left in ~/.ray by an earlier
# `ray.init` would otherwise make the second node's `ray start` fail authentication).
# Train's settings for a local Ray (r2d/run/distributed.py: no preemption watcher, no metrics, 0.5 s
# polling): these two nodes on one machine have no spot preemption either, and each fit() saves seconds.
# the two Ray nodes here share this machine's filesystem: local storage and sqlite reach both
ENV = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled", **LOCAL_TRAIN_ENV,
       SHARED_FILESYSTEM_ENV: "1"}


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    """`ray start --head` plus a second node: a real multi-node cluster on this machine."""
    port = free_port()
    tmp = Path("/tmp") / f"r2d-test-ray-{os.getpid()}-{port}"  # short: Ray's socket paths have a length limit
    ray_bin = str(Path(sys.executable).with_name("ray"))
    address = f"127.0.0.1:{port}"
    markers = (str(tmp), address, f"gcs_server_port={port}")
    try:
        subprocess.run([ray_bin, "start", "--head", f"--port={port}", "--num-cpus=1", "--node-ip-address=127.0.0.1",
                        "--include-dashboard=false", f"--temp-dir={tmp}", "--disable-usage-stats"],
                       check=True, env=ENV, capture_output=True)
        subprocess.run([ray_bin, "start", f"--address={address}", "--num-cpus=1", "--node-ip-address=127.0.0.1"],
                       check=True, env=ENV, capture_output=True)
        yield address
    finally:
        # By PID, not `ray stop --force`, which stops every Ray on the machine (a user's sweep too):
        # this cluster's daemons are the processes that name its temp dir or its GCS port; its workers
        # share their raylet's fate.
        stop_matching(markers)


def stop_matching(markers: tuple[str, ...], timeout: float = 5.0) -> None:
    """SIGTERM every process whose command line contains one of `markers`, and every descendant of one
    (Ray's agents rename themselves `ray::...` and would be orphaned by a raylet killed before them),
    then SIGKILL what is left."""
    def processes() -> dict[int, tuple[int, str]]:  # pid -> (parent pid, command line)
        found = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                    cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                except (OSError, IndexError, ValueError):
                    continue
                found[int(entry.name)] = (ppid, cmdline)
        return found

    procs = processes()
    targets = {pid for pid, (_, cmd) in procs.items() if pid != os.getpid() and any(m in cmd for m in markers)}
    while grown := {pid for pid, (ppid, _) in procs.items() if ppid in targets} - targets:
        targets |= grown
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in targets:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.time() + timeout
        while targets & set(processes()) and time.time() < deadline:
            time.sleep(0.5)


def sweep_cmd(script, tmp, address, *extra):
    args = [sys.executable, str(ROOT / "sweeps" / script), "--address", address,
            "--storage-path", str(tmp / "storage"), "--tracking-uri", f"sqlite:///{tmp / 'mlflow.db'}",
            "--set", f"model.cache_dir={tmp / 'cache'}"]
    for s in TINY:
        args += ["--set", s]
    return args + list(extra)


def run_sweep(script, tmp, address, *extra, timeout=600, console=None):
    out = subprocess.run(sweep_cmd(script, tmp, address, *extra), capture_output=True, text=True, timeout=timeout,
                         cwd=tmp, env=ENV)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    if console is not None:
        console.update(stdout=out.stdout, stderr=out.stderr)
    return out.stdout


def children(tmp, experiment):
    from mlflow import MlflowClient

    c = MlflowClient(f"sqlite:///{tmp / 'mlflow.db'}")
    exp = c.get_experiment_by_name(experiment)
    runs = c.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("r2d.kind") == "sweep"]
    kids = [r for r in runs if r.data.tags.get("r2d.kind") != "sweep"]
    return c, parents, kids


def finished_runs(db: Path) -> int:
    """FINISHED runs in a sweep's sqlite store, read only: an MlflowClient would create or migrate the
    store's tables while the sweep driver is creating them (a race that killed the driver)."""
    if not db.exists():
        return 0
    try:
        with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as con:
            return con.execute("SELECT COUNT(*) FROM runs WHERE status = 'FINISHED'").fetchone()[0]
    except sqlite3.Error:  # tables not there yet, or locked for a moment
        return 0


PLACEMENT_PROBE = """
import json, sys
import ray
from ray.util.placement_group import placement_group, remove_placement_group
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
from r2d.sweep.placement import trials_that_fit

address, driver_cpus, worker_cpus, forced = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
ray.init(address=address, log_to_driver=False)
nodes = [n for n in ray.nodes() if n["Alive"]]
n = trials_that_fit([node["Resources"] for node in nodes], {"CPU": driver_cpus}, 1, {"CPU": worker_cpus})
n = int(forced) if forced != "computed" else n

@ray.remote
class Driver:
    def ping(self):
        return 1

placed = {}
for node in nodes:  # every driver on one node, each node in turn: the worst case for the workers
    pin = NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)
    drivers = [Driver.options(num_cpus=driver_cpus, scheduling_strategy=pin).remote() for _ in range(n)]
    ray.get([d.ping.remote() for d in drivers])
    workers = [placement_group([{"CPU": worker_cpus}]) for _ in range(n)]
    ready, _ = ray.wait([w.ready() for w in workers], num_returns=n, timeout=10)
    placed[node["NodeID"][:8]] = len(ready)
    for w in workers:
        remove_placement_group(w)
    for d in drivers:
        ray.kill(d)
print(json.dumps({"trials": n, "workers_placed": placed}))
"""


def probe_placement(address, driver_cpus, worker_cpus, trials="computed"):
    out = subprocess.run([sys.executable, "-c", PLACEMENT_PROBE, address, str(driver_cpus), str(worker_cpus), trials],
                         capture_output=True, text=True, timeout=180, env=ENV, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_concurrent_trials_place_their_workers_wherever_the_drivers_land(ray_cluster):
    # the preset's drivers and workers: 2 trials at once, placeable even with both drivers on one node
    ok = probe_placement(ray_cluster, 0.05, 0.9)
    assert ok["trials"] == 2 and all(v == 2 for v in ok["workers_placed"].values())
    # 0.1-CPU drivers: the rule allows 1; forcing 2 shows the hang it avoids (a worker never placed)
    assert probe_placement(ray_cluster, 0.1, 0.9)["trials"] == 1
    hung = probe_placement(ray_cluster, 0.1, 0.9, trials="2")
    assert all(v == 1 for v in hung["workers_placed"].values())


# A trial's recorded config, trained on Ray Train (TorchTrainer, one worker) on the same cluster.
TRAIN_ON_RAY = """
import json, sys
from r2d.run import runner
from r2d.config import load_config
cfg = load_config(sys.argv[1], [f"resources.ray_address={sys.argv[2]}", "tracking.enabled=false"])
print(json.dumps(runner.train(cfg, sys.argv[3], on_ray=True)["runtime"]))
"""


def test_grid_sweep_with_a_failing_trial(ray_cluster, tmp_path):
    console: dict = {}
    # one schedule (the study's grid, narrowed per key), a healthy and a failing trial
    out = run_sweep("schedule_sensitivity.py", tmp_path, ray_cluster, "--grid", "stage2.schedule.shape=linear",
                    "--grid", "stage2.schedule.transition=0.5", "--grid", "debug.inject_nan_at_step=null,1",
                    "--seeds", "0", console=console)
    assert "| system |" in out and "mlflow ui --backend-store-uri" in out
    # a quiet console: one line per finished trial, progress lines, the table and the report; Ray's and
    # Tune's own output in ray.log. Budget: 3 lines per trial (3 with Stage 1) + 120 for the summary.
    lines = (console["stdout"] + console["stderr"]).splitlines()
    assert len(lines) <= 3 * 3 + 120, len(lines)
    assert not any("PlacementGroupCleaner" in line for line in lines)
    assert sum("dev macro-F1" in line for line in lines) == 2
    assert (next((tmp_path / "storage").glob("schedule_sensitivity-*")) / "ray.log").exists()
    c, parents, kids = children(tmp_path, "schedule_sensitivity")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    # two 1-CPU nodes, 0.05-CPU drivers, 0.9-CPU workers: two trials at once, wherever the drivers land
    assert parents[0].data.params["max_concurrent_trials"] == "2"
    sweep_id = parents[0].data.tags["r2d.sweep_id"]
    assert all(k.data.tags["r2d.sweep_id"] == sweep_id for k in kids)
    assert all(k.data.tags["mlflow.parentRunId"] == parents[0].info.run_id for k in kids)
    finished = [k for k in kids if k.info.status == "FINISHED"]
    failed = [k for k in kids if k.info.status == "FAILED"]
    assert len(finished) == 1 and len(failed) == 1 and len(kids) == 2
    assert all("non-finite loss" in k.data.tags["r2d.error"] for k in failed)
    # one Stage 1 for the seed, trained in phase 1 and reused by every trial
    stage1 = list((tmp_path / "storage" / "stage1").iterdir())
    assert len(stage1) == 1
    for k in finished:
        art = c.download_artifacts(k.info.run_id, "metrics.json", str(tmp_path / "dl" / k.info.run_id))
        assert json.loads(Path(art).read_text())["stage1"]["reused"] is True
    # the parent carries the search space, timings and the analysis outputs
    names = {a.path for a in c.list_artifacts(parents[0].info.run_id)}
    assert {"search_space.json", "timings.json", "analysis"} <= names
    analysis = {a.path for a in c.list_artifacts(parents[0].info.run_id, "analysis")}
    assert "analysis/significance.md" in analysis
    assert "analysis/cache" not in analysis  # no second copy of the children's predictions
    # the MLflow UI: an ML experiment (opens on the runs table), the verdicts as the parent's description
    assert c.get_experiment_by_name("schedule_sensitivity").tags["mlflow.experimentKind"] == "custom_model_development"
    assert "| system |" in parents[0].data.tags["mlflow.note.content"]
    # single-worker trials train in their own Tune trial process: no Ray Train worker
    runtime = json.loads((tmp_path / "dl" / finished[0].info.run_id / "metrics.json").read_text())["runtime"]
    assert runtime["path"] == "tune_trial"
    assert runtime["workers"][0]["pid"] == int(finished[0].data.tags["r2d.trial_pid"])
    # ... and the same configuration and seed on Ray Train (a TorchTrainer worker) predict the same bytes
    trial_dir = tmp_path / "dl" / finished[0].info.run_id
    c.download_artifacts(finished[0].info.run_id, "config.yaml", str(trial_dir))
    c.download_artifacts(finished[0].info.run_id, "predictions", str(trial_dir))
    on_train = subprocess.run([sys.executable, "-c", TRAIN_ON_RAY, str(trial_dir / "config.yaml"), ray_cluster,
                               str(tmp_path / "on_train")], capture_output=True, text=True, timeout=300, env=ENV)
    assert on_train.returncode == 0, on_train.stderr[-3000:]
    assert json.loads(on_train.stdout.strip().splitlines()[-1]).get("path") != "tune_trial"
    predictions = "predictions/test.csv"
    assert (tmp_path / "on_train" / predictions).read_bytes() == (trial_dir / predictions).read_bytes()


def kill_after_first_finished_run(cmd: list[str], tmp: Path) -> None:
    """Start a sweep driver and SIGKILL its process group once the first run is FINISHED in MLflow."""
    proc = subprocess.Popen(cmd, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, env=ENV)
    try:
        deadline = time.time() + 600  # the first trial on a loaded 2-core machine: Stage 1 phase + one trial
        while time.time() < deadline and finished_runs(tmp / "mlflow.db") == 0:
            time.sleep(1)
        os.killpg(proc.pid, signal.SIGKILL)  # the driver dies without any chance to clean up
        proc.wait(timeout=30)
    finally:
        stop_pid(proc)


def test_referee_plan_survives_a_killed_driver_shares_trials_reuses_them_and_answers_each_point(
        ray_cluster, tmp_path):
    """sweeps/referee.py at tiny budgets: one plan over the three studies, each distinct trial trained
    once. The driver is killed mid-plan; `--resume` finishes it without duplicates and writes both
    report files with a verdict per point; run again, every trial is reused from MLflow."""
    kill_after_first_finished_run(sweep_cmd("referee.py", tmp_path, ray_cluster, "--seeds", "0"), tmp_path)
    _, _, before = children(tmp_path, "referee")
    assert 1 <= sum(k.info.status == "FINISHED" for k in before) < 11, "kill the driver mid-plan"
    console: dict = {}
    out = run_sweep("referee.py", tmp_path, ray_cluster, "--seeds", "0", "--resume", timeout=1200, console=console)
    c, parents, kids = children(tmp_path, "referee")
    trials = plan_trials(referee.PLANS[None], read_config(str(ROOT / "configs" / "triage-tiny-sweep.yaml")))
    finished = [k for k in kids if k.info.status == "FINISHED"]
    assert len(finished) == len([t for t in trials if t.seed == 0]) == 11  # 4 + 4 + 6 asked, 11 distinct
    assert len({k.data.tags["r2d.system_id"] for k in finished}) == 11  # no trial trained twice
    assert not [k for k in kids if k.info.status == "RUNNING"]  # the killed driver's in-flight runs are ended
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    sweep_dir = next((tmp_path / "storage").glob("referee-*"))
    md, html = (sweep_dir / "referee" / "referee.md").read_text(), (sweep_dir / "referee" / "referee.html").read_text()
    for point in (1, 2, 3):
        assert f"Point {point}." in md
    assert md.count("**Point 1,") == 1 and md.count("**Point 3,") == 2  # a verdict summary per question
    assert "data:image/png;base64," in html and "https://" not in html
    assert "referee report:" in out and "Point 1" in out
    assert len((console["stdout"] + console["stderr"]).splitlines()) <= 4 * 14 + 150
    plan = json.loads((sweep_dir / "plan.json").read_text())
    assert [q["id"] for q in plan["questions"]] == ["controls", "schedule", "rationale_source"]
    assert "referee/referee.html" in {a.path for a in c.list_artifacts(parents[0].info.run_id, "referee")}
    # a second invocation trains nothing: every (configuration, seed) is a FINISHED run of the experiment
    out = run_sweep("referee.py", tmp_path, ray_cluster, "--seeds", "0", timeout=900)
    assert "reused 11 trial(s)" in out
    _, parents, kids_after = children(tmp_path, "referee")
    assert len(kids_after) == len(kids) and len(parents) == 2
    assert len(list((tmp_path / "storage").glob("referee-*/referee/referee.md"))) == 2
