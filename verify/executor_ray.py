"""Run a sweep's groups on a Ray cluster: one long-lived worker per GPU (or per CPU slot).

``RayExecutor`` implements :class:`limen.verify.executors.Executor`. Each worker is a
Ray actor that keeps its process, and with it the engine's teacher cache, for the
whole sweep; groups that share a teacher are sent to the same worker
(:class:`limen.verify.sharding.ShardQueue`). A worker returns a group's records to
the driver, which alone writes them (``on_done``), so records are exactly-once:

* a worker that dies mid-group (crash, OOM kill, lost node) returned nothing; the
  group goes back to the queue, a fresh worker takes the dead one's place, and the
  group is trained again (at most ``max_retries`` times);
* a driver that is killed loses only groups it had not yet written; rerunning the
  sweep skips every run already in the store.

An exception raised by the group function itself (a bad config, a bug) is not a
worker failure: it stops the sweep and is raised in the driver, as with the local
executor (finished groups are already written).

Ray is optional: ``pip install 'limen[ray]'``. See ``docs/distributed.md``.

``python -m limen.verify.executor_ray --bench`` measures the speed-up of 2 workers
over 1 on a small CPU sweep, both in the same run.
"""

from __future__ import annotations

import logging
import os
import platform
import socket
import sys
import time
from typing import Callable, Hashable, Sequence

import ray
import torch
from ray.exceptions import RayError, RayTaskError

from .executors import ClaimFn, DoneFn, Group, GroupFn
from .sharding import Affinity, ShardQueue, split_to_fill

__all__ = ["RayExecutor", "check_address", "teacher_affinity"]


def check_address(address: str, timeout: float = 10.0) -> None:
    """Fail fast, naming ``address``, when nothing listens there (``ray.init`` would retry for minutes).

    ``auto`` and addresses that are not ``[ray://]host:port`` are left to Ray.
    """
    target = address[len("ray://"):] if address.startswith("ray://") else address
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise ValueError(f"no Ray cluster answers at {address} ({exc.strerror or exc}); start one there with "
                         f"`ray start --head --port {port}` or give the right --address") from None


def teacher_affinity(group: Group) -> Hashable:
    """Shard key of a group: the teacher keys of its runs when they are subliminal runs.

    Groups whose runs need the same teachers then go to the worker that has them
    cached. Any other group (no engine loaded, other run types) is a shard of its own.
    """
    engine = sys.modules.get(__package__ + ".subliminal.engine")  # loaded by whoever planned the groups
    if engine is not None and group and all(isinstance(c, engine.RunConfig) for c in group):
        return tuple(sorted({engine.teacher_key(c) for c in group}))
    return ("group", id(group))


class _Worker:
    """Ray actor: trains groups in one long-lived process (caches survive between groups)."""

    def __init__(self, threads: int, gpu: bool):
        if not gpu:
            os.environ["CUDA_VISIBLE_DEVICES"] = ""  # a CPU worker on a GPU node stays on the CPU
        os.environ["OMP_NUM_THREADS"] = str(threads)
        torch.set_num_threads(threads)  # same threads as a local run with as many: same floats

    def ready(self) -> dict:
        return {"pid": os.getpid(), "host": platform.node(), "cuda": torch.cuda.is_available(),
                "gpus": [str(g) for g in ray.get_gpu_ids()], "threads": torch.get_num_threads()}

    def run(self, fn: GroupFn, group: Group) -> list[dict]:
        return fn(group)


class RayExecutor:
    """Train groups on Ray workers; records come back to the driver (sole writer).

    Parameters
    ----------
    address:
        ``None`` reuses a running ``ray.init`` of this process or starts a local
        cluster; ``"auto"`` joins the cluster started by ``ray start`` on this
        machine; ``"ray://host:10001"`` connects through Ray Client; any other value
        is passed to ``ray.init(address=...)``.
    num_workers:
        Number of workers; default one per GPU of the cluster, or, when it has no
        GPU (or ``use_gpu=False``), one per ``cpus_per_worker`` CPUs.
    use_gpu:
        ``None`` (default): GPU workers when the cluster has GPUs.
    cpus_per_worker:
        CPUs reserved per worker; a CPU worker runs torch with this many threads.
    max_retries:
        How often one group may be retried after its worker died.
    affinity:
        ``affinity(group) -> key``; groups with equal keys go to the same worker.
        Default: the subliminal teacher keys of the group's runs.
    on_failure:
        Called in the driver as ``on_failure(group, error)`` for each worker death
        (the group is retried); the count is also kept in :attr:`failures`.
    init_options:
        Extra keyword arguments for ``ray.init`` (e.g. ``num_cpus``, ``runtime_env``).
    worker_start_timeout:
        Seconds to wait for a worker to start before giving up (no resources).
    connect_timeout:
        Seconds to wait for ``address`` to answer before giving up (a ValueError names it).
    keep_workers:
        Keep the workers (and their caches) between ``map_groups`` calls, e.g. for
        a goal search that submits a batch of trials at a time; call :meth:`close`
        at the end. By default the workers stop when ``map_groups`` returns, so
        that a later executor finds the cluster's CPUs/GPUs free.
    split:
        When a sweep has fewer groups than workers, split the largest groups
        (:func:`limen.verify.sharding.split_to_fill`) so that no worker idles;
        ``on_done`` then receives the parts. Sweeps with enough groups are untouched.
    """

    name = "ray"

    def __init__(self, address: str | None = None, *, num_workers: int | None = None,
                 use_gpu: bool | None = None, cpus_per_worker: int = 1, max_retries: int = 3,
                 affinity: Affinity | None = teacher_affinity,
                 on_failure: Callable[[Group, BaseException], None] | None = None,
                 init_options: dict | None = None, worker_start_timeout: float = 600.0,
                 connect_timeout: float = 10.0, keep_workers: bool = False, split: bool = True):
        if cpus_per_worker < 1:
            raise ValueError("cpus_per_worker must be at least 1")
        if num_workers is not None and num_workers < 1:
            raise ValueError("num_workers must be at least 1")
        self.address = address
        self.num_workers = num_workers
        self.use_gpu = use_gpu
        self.cpus_per_worker = int(cpus_per_worker)
        self.max_retries = int(max_retries)
        self.affinity = affinity
        self.on_failure = on_failure
        self.init_options = dict(init_options or {})
        self.worker_start_timeout = float(worker_start_timeout)
        self.connect_timeout = float(connect_timeout)
        self.keep_workers = bool(keep_workers)
        self.split = bool(split)
        self.failures = 0
        self.worker_info: dict[int, dict] = {}  # worker id -> host, pid, cuda, gpus, threads
        self._started_ray = False
        self._workers: dict[int, object] = {}   # worker id -> actor handle
        self._next_id = 0
        self._gpu = False

    # -- cluster and workers -------------------------------------------------

    def _connect(self) -> None:
        if self.address is not None:
            check_address(self.address, self.connect_timeout)
        if ray.is_initialized():
            return
        opts = {"include_dashboard": False, "logging_level": logging.WARNING, **self.init_options}
        if self.address is not None:
            opts["address"] = self.address
        ray.init(**opts)
        self._started_ray = True

    def _plan_workers(self, n_runs: int) -> int:
        res = ray.cluster_resources()
        gpus, cpus = int(res.get("GPU", 0)), int(res.get("CPU", 0))
        self._gpu = gpus > 0 if self.use_gpu is None else bool(self.use_gpu)
        if self._gpu and gpus == 0:
            raise ValueError("use_gpu=True but the Ray cluster has no GPU")
        default = gpus if self._gpu else max(cpus // self.cpus_per_worker, 1)
        return max(1, min(self.num_workers or default, n_runs))

    def _spawn(self) -> int:
        actor_cls = ray.remote(_Worker).options(
            num_cpus=self.cpus_per_worker, num_gpus=1 if self._gpu else 0, max_restarts=0)
        wid, self._next_id = self._next_id, self._next_id + 1
        self._workers[wid] = actor_cls.remote(self.cpus_per_worker, self._gpu)
        return wid

    def start(self) -> list[dict]:
        """Start the workers now and wait until each is up (``map_groups`` otherwise starts them).

        With ``keep_workers=True`` this takes process start-up out of the first sweep's time.
        Returns each worker's host, pid, threads and GPUs.
        """
        self._connect()
        n = self._plan_workers(self.num_workers or 1 << 30)
        while len(self._workers) < n:
            self._spawn()
        infos = ray.get([h.ready.remote() for h in self._workers.values()], timeout=self.worker_start_timeout)
        self.worker_info.update(zip(self._workers, infos))
        return infos

    def close(self) -> None:
        """Stop the workers; shut Ray down if this executor started it."""
        self.stop_workers()
        if self._started_ray and ray.is_initialized():
            ray.shutdown()
        self._started_ray = False

    def __enter__(self) -> "RayExecutor":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- the sweep -------------------------------------------------------------

    def map_groups(self, groups: Sequence[Group], fn: GroupFn, on_done: DoneFn, claim: ClaimFn | None = None) -> None:
        """Train every group on the workers; ``on_done(group, records)`` here, as each returns.

        ``claim(group)``, when given, is asked in the driver just before a group is handed to a
        worker and returns the part to train (an empty part is skipped).
        """
        if not groups:
            return
        self._connect()
        n_workers = self._plan_workers(sum(len(g) for g in groups) if self.split else len(groups))
        groups = split_to_fill(groups, n_workers) if self.split else [list(g) for g in groups]
        queue = ShardQueue(groups, self.affinity)
        fn_ref = ray.put(fn)
        attempts = [0] * len(groups)
        start_failures = 0
        n_done = 0
        pending: dict[object, tuple[str, int, int]] = {}  # ref -> (what, worker id, group index)
        idle: list[int] = []
        starting: dict[int, float] = {}                   # worker id -> when it was asked to start

        def dispatch(wid: int) -> None:
            nonlocal n_done
            while (index := queue.next_for(wid)) is not None:
                if claim is not None and attempts[index] == 0:
                    groups[index] = list(claim(groups[index]))
                    if not groups[index]:
                        n_done += 1  # held by another process, or finished meanwhile
                        continue
                pending[self._workers[wid].run.remote(fn_ref, groups[index])] = ("run", wid, index)
                return
            idle.append(wid)

        def await_ready(wid: int) -> None:
            starting[wid] = time.monotonic()
            pending[self._workers[wid].ready.remote()] = ("ready", wid, -1)

        try:
            for wid in list(self._workers):  # kept from an earlier call (keep_workers=True)
                await_ready(wid)
            for _ in range(n_workers - len(self._workers)):
                await_ready(self._spawn())
            while n_done < len(groups):
                if not pending:
                    raise RuntimeError("no Ray worker is left to run the remaining groups")
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=self._wait_timeout(pending, starting))
                if not ready:
                    raise RuntimeError(
                        f"no Ray worker started within {self.worker_start_timeout:.0f} s; does the cluster "
                        f"have {'a free GPU' if self._gpu else f'{self.cpus_per_worker} free CPU(s)'}?")
                what, wid, index = pending.pop(ready[0])
                try:
                    result = ray.get(ready[0])
                except RayTaskError as exc:  # the group function raised: a bug or a bad config
                    raise exc.as_instanceof_cause() from None
                except RayError as exc:      # the worker died: its group goes back to the queue
                    self._workers.pop(wid, None)
                    starting.pop(wid, None)
                    queue.release(wid)
                    if what == "run":
                        attempts[index] += 1
                        self._fail(groups[index], exc)
                        if attempts[index] > self.max_retries:
                            raise RuntimeError(
                                f"a group of {len(groups[index])} run(s) lost its worker {attempts[index]} "
                                "times; giving up (finished groups are in the results store)") from exc
                        queue.requeue(index)
                    else:
                        start_failures += 1
                        if start_failures > self.max_retries:
                            raise RuntimeError(f"Ray workers fail to start: {exc}") from exc
                    while idle and len(queue):
                        dispatch(idle.pop())
                    if len(queue):
                        await_ready(self._spawn())
                    continue
                if what == "ready":
                    starting.pop(wid, None)
                    self.worker_info[wid] = result
                else:
                    on_done(groups[index], result)
                    n_done += 1
                dispatch(wid)
        finally:  # after an error, kept workers finish their current group and its result is dropped
            if not self.keep_workers:
                self.stop_workers()

    def _wait_timeout(self, pending: dict, starting: dict[int, float]) -> float | None:
        """A deadline only while nothing but worker start-ups is pending."""
        if not starting or any(what == "run" for what, _, _ in pending.values()):
            return None
        return max(self.worker_start_timeout - (time.monotonic() - min(starting.values())), 0.0)

    def _fail(self, group: Group, exc: BaseException) -> None:
        self.failures += 1
        print(f"limen: a Ray worker died while training a group of {len(group)} run(s); "
              f"retrying it on a fresh worker ({type(exc).__name__})", file=sys.stderr, flush=True)
        if self.on_failure is not None:
            self.on_failure(group, exc)

    def stop_workers(self) -> None:
        """Stop this executor's workers (their caches go with them); Ray itself stays up."""
        for handle in self._workers.values():
            try:
                ray.kill(handle)
            except Exception:  # noqa: BLE001 - already gone
                pass
        self._workers.clear()


# ----------------------------------------------------------------------------- speed-up benchmark

def bench(n_seeds: int = 4, m_values: Sequence[int] = (10, 50), max_group: int = 2, data: str = "digits",
          student_epochs: int = 2, noise_steps: int = 30, repeats: int = 2, address: str | None = None) -> dict:
    """Time one CPU sweep with 1 Ray worker and with 2, in the same run; return the report.

    The two are timed alternately ``repeats`` times (1, 2, 1, 2, ...) so that a change in
    the machine's load during the run hits both; the speed-up is the ratio of the median
    times. Each executor's workers are started and warmed (torch, the engine and the data
    set loaded, one throw-away run) before its timing, so the ratio compares sweep work,
    not process start-up (reported separately). The local executor's time with one torch
    thread is measured too (the overhead of going through Ray at all), and every Ray
    sweep's records are compared with the local ones.
    """
    import statistics
    import tempfile

    from .subliminal import RunConfig, run_sweep

    proto = dict(data=data, student_epochs=student_epochs, noise_steps=noise_steps)
    configs = [RunConfig(seed=s, m=m, **proto) for s in range(n_seeds) for m in m_values]
    warm = RunConfig(seed=10_000, m=min(m_values), **{**proto, "student_epochs": 1, "noise_steps": 1})
    report: dict = {"runs": len(configs), "max_group": max_group, "protocol": proto, "m_values": list(m_values),
                    "seeds": n_seeds, "repeats": repeats, "cpu_count": os.cpu_count(),
                    "loadavg_before": list(os.getloadavg())}
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING,
                 **({} if address else {"num_cpus": 2}))
    report["cluster_cpus"] = ray.cluster_resources().get("CPU", 0)
    times: dict[int, list[float]] = {1: [], 2: []}
    starts: dict[int, list[float]] = {1: [], 2: []}
    identical = True
    with tempfile.TemporaryDirectory() as tmp:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            run_sweep([warm], out=f"{tmp}/warm-local", device="cpu", progress=False)
            t0 = time.perf_counter()
            local = run_sweep(configs, out=f"{tmp}/local", device="cpu", progress=False, max_group=max_group)
            report["local_1_thread_s"] = time.perf_counter() - t0
        finally:
            torch.set_num_threads(threads)
        metrics = {r["key"]: r["metrics"] for r in local}
        for rep in range(repeats):
            for n in (1, 2):
                with RayExecutor(num_workers=n, keep_workers=True, split=False) as ex:
                    t0 = time.perf_counter()
                    ex.start()
                    warm_n = [warm.replace(seed=warm.seed + 100 * rep + i) for i in range(n)]  # one per worker
                    run_sweep(warm_n, out=f"{tmp}/warm{rep}-{n}", progress=False, max_group=1, executor=ex)
                    starts[n].append(time.perf_counter() - t0)
                    t0 = time.perf_counter()
                    records = run_sweep(configs, out=f"{tmp}/ray{rep}-{n}", device="cpu", progress=False,
                                        max_group=max_group, executor=ex)
                    times[n].append(time.perf_counter() - t0)
                    identical &= all(metrics[r["key"]] == r["metrics"] for r in records)
    for n in (1, 2):
        report[f"ray_{n}_workers_s"] = times[n]
        report[f"ray_{n}_start_s"] = starts[n]
    report["identical_to_local"] = identical
    report["speedup_2_vs_1"] = statistics.median(times[1]) / statistics.median(times[2])
    report["loadavg_after"] = list(os.getloadavg())
    return report


def main(argv: list[str] | None = None) -> int:
    import argparse
    import json

    p = argparse.ArgumentParser(prog="python -m limen.verify.executor_ray",
                                description="Speed-up of 2 Ray CPU workers over 1 on a small digits sweep (one run).")
    p.add_argument("--bench", action="store_true", required=True, help="run the benchmark")
    p.add_argument("--seeds", type=int, default=4)
    p.add_argument("--m", default="10,50", help="aux-head widths, comma list")
    p.add_argument("--max-group", type=int, default=2, help="runs per group (groups are what workers share out)")
    p.add_argument("--student-epochs", type=int, default=2)
    p.add_argument("--noise-steps", type=int, default=30)
    p.add_argument("--repeats", type=int, default=2, help="timings of each, alternating (median is used)")
    p.add_argument("--address", default=None, help="an existing cluster (default: a local one with 2 CPUs)")
    p.add_argument("--json", default=None, help="also write the report here")
    a = p.parse_args(argv)
    r = bench(a.seeds, [int(m) for m in a.m.split(",")], a.max_group, student_epochs=a.student_epochs,
              noise_steps=a.noise_steps, repeats=a.repeats, address=a.address)
    fmt = lambda xs: ", ".join(f"{x:.2f}" for x in xs)  # noqa: E731
    print(f"{r['runs']} digits runs (m in {r['m_values']}, {r['seeds']} seeds, groups of <= {r['max_group']}), "
          f"CPU, {r['cpu_count']} cores; load average {r['loadavg_before'][0]:.2f} before, "
          f"{r['loadavg_after'][0]:.2f} after")
    print(f"  local executor, 1 torch thread : {r['local_1_thread_s']:.2f} s")
    for n in (1, 2):
        print(f"  ray, {n} worker(s) x 1 thread   : {fmt(r[f'ray_{n}_workers_s'])} s  "
              f"(start + warm-up {fmt(r[f'ray_{n}_start_s'])} s)")
    print(f"  records identical to local     : {r['identical_to_local']}")
    print(f"  speed-up, 2 workers vs 1       : {r['speedup_2_vs_1']:.2f}x (ratio of medians)")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(r, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
