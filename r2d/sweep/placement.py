"""How many trials a Ray cluster can run at once without a placement that can deadlock.

Used by r2d/sweep/run.py (the live cluster) and its --dry-run (the cluster r2d would start)."""

from __future__ import annotations

import math

import ray

from r2d.config import Config, ResourcesConfig


def trials_that_fit(nodes: list[dict[str, float]], driver: dict[str, float], num_workers: int,
                    worker: dict[str, float]) -> int:
    """How many trials can run at once with no placement of theirs able to deadlock.

    A trial is a small Tune driver plus its Ray Train workers, which its TrainController requests
    later as a separate placement group. Ray places the drivers wherever they fit, so the drivers
    of concurrent trials can all land on one node and leave it too fragmented for a worker (two
    1-CPU nodes, 0.1-CPU drivers, 0.9-CPU workers: driver, worker, driver, worker hangs forever).
    So count each node's worker slots as if every concurrent driver sat on it.
    """
    eps = 1e-9  # Ray accounts resources in 1/10000 units; don't lose a slot to float error

    def worker_slots(node: dict[str, float], drivers: int) -> int:
        free = {k: node.get(k, 0.0) - drivers * driver.get(k, 0.0) for k in worker}
        return max(min(math.floor(free[k] / need + eps) for k, need in worker.items()), 0)

    n = 0
    while sum(worker_slots(node, n + 1) for node in nodes) >= (n + 1) * num_workers:
        n += 1
    return n


def in_trial_process(r: ResourcesConfig) -> bool:
    """Whether a trial trains in its own Tune trial process (one worker; r2d.sweep.trial) or drives Ray Train."""
    return r.num_workers == 1


def trial_resources(r: ResourcesConfig) -> dict[str, float]:
    """What a trial asks Tune for (`tune.with_resources`): its worker's resources and the trial's
    own small share when it trains in the trial process, else only the driver's (Train places the
    TorchTrainer's workers itself)."""
    if not in_trial_process(r):
        return {"CPU": r.trial_cpus}
    worker = r.worker_resources()
    return {**worker, "CPU": worker["CPU"] + r.trial_cpus}


def trials_on(nodes: list[dict[str, float]], r: ResourcesConfig) -> int:
    """How many trials of a config's `resources` section fit the nodes at once: one bundle per trial
    that trains in its own process; otherwise `trials_that_fit` for its driver and workers."""
    if in_trial_process(r):
        eps = 1e-9
        bundle = trial_resources(r)
        return sum(max(min(math.floor(node.get(k, 0.0) / need + eps) for k, need in bundle.items()), 0)
                   for node in nodes)
    return trials_that_fit(nodes, {"CPU": r.trial_cpus}, r.num_workers, r.worker_resources())


def max_concurrent_trials(cfg: Config) -> int:
    """How many trials fit the cluster at once, so that trials never wait on each other's workers."""
    r = cfg.resources
    nodes = [node["Resources"] for node in ray.nodes() if node["Alive"]]
    n = trials_on(nodes, r)
    if n < 1:
        have = [(node.get("CPU", 0), node.get("GPU", 0)) for node in nodes]
        need = (trial_resources(r) if in_trial_process(r) else
                f"a driver of {r.trial_cpus} CPU and {r.num_workers} x {r.worker_resources()}")
        raise RuntimeError(f"resources: a trial needs {need} but the cluster's nodes have (CPU, GPU) {have}")
    return n
