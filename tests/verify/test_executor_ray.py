"""The Ray executor on a local Ray cluster with 2 CPU workers: same records as the local
executor, exactly-once records when a worker dies mid-sweep or the driver is interrupted
or killed.

Most tests use a stand-in group function (a tiny torch model per config, deterministic
from its seed, with a per-process teacher cache like the engine's) because it is quick
and can crash on cue; the others run the infomorphic goal search (Optuna trials on the
workers) and the real subliminal engine on digits, through ``run_sweep`` and through
``limen run subliminal --executor ray --address ...``.
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from limen.verify.executors import LocalExecutor, get_executor
from limen.verify.records import ResultStore, config_dict, config_key

from stored import stored_records  # tests/verify/stored.py

# Keep Ray on the loopback interface (its single-machine mode); read when ray is imported.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
ray = pytest.importorskip("ray")

_TEACHERS: dict[int, torch.Tensor] = {}  # per-process cache, like the engine's


def stand_in_group(group, crash_marker: str | None = None, crash_on: str | None = None):
    """Train every config of ``group`` (tiny regression, 30 Adam steps) -> records."""
    records = []
    for cfg in group:
        key = config_key(cfg)
        if crash_marker and key == crash_on and not os.path.exists(crash_marker):
            Path(crash_marker).write_text(str(os.getpid()))
            os._exit(1)  # the worker process dies mid-group, once
        hit = cfg["teacher"] in _TEACHERS
        if not hit:
            g = torch.Generator().manual_seed(1000 + cfg["teacher"])
            _TEACHERS[cfg["teacher"]] = torch.randn(8, 1, generator=g)
        teacher = _TEACHERS[cfg["teacher"]]
        torch.manual_seed(cfg["seed"])
        model = torch.nn.Sequential(torch.nn.Linear(8, cfg["width"]), torch.nn.ReLU(), torch.nn.Linear(cfg["width"], 1))
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        for _ in range(30):
            x = torch.rand(64, 8) * 2 - 1
            loss = ((model(x) - x @ teacher) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        records.append({"key": key, "config": config_dict(cfg), "pid": os.getpid(), "teacher_cache_hit": hit,
                        "metrics": {"loss": loss.item(), "w_sum": sum(p.double().sum().item() for p in model.parameters())}})
    return records


def plan(n_teachers=3, n_seeds=2, widths=(4, 16)):
    """Groups of same-width configs (shape-compatible) per teacher, like the engine's plan."""
    return [[{"teacher": t, "seed": s, "width": w} for s in range(n_seeds)] for t in range(n_teachers) for w in widths]


def sweep(executor, groups, fn, store: ResultStore):
    """A stand-in for the engine's run_sweep: skip finished keys, the driver writes records."""
    done = store.done_keys()
    todo = [g for g in ([c for c in g if config_key(c) not in done] for g in groups) if g]
    executor.map_groups(todo, fn, lambda group, records: store.extend(records))
    return store.records()


def metrics_by_key(records):
    return {r["key"]: r["metrics"] for r in records}


@pytest.fixture(scope="module")
def cluster():
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import tests/
    # 4 logical CPUs: the kept 2-worker executor below and a second 2-worker sweep fit side by side
    ray.init(num_cpus=4, include_dashboard=False, logging_level="WARNING")
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="module")
def executor(cluster):
    """Two CPU workers kept across the tests (starting one costs seconds: it imports torch)."""
    with get_executor("ray", num_workers=2, keep_workers=True) as ex:
        yield ex


@pytest.fixture(scope="module")
def local_records(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # each Ray CPU worker runs torch with 1 thread: same floats
    try:
        return sweep(LocalExecutor(), plan(), stand_in_group, ResultStore(tmp_path_factory.mktemp("local") / "r.jsonl"))
    finally:
        torch.set_num_threads(threads)


def _same_records_as_local(records, local_records):
    keys = [r["key"] for r in records]
    assert len(keys) == len(set(keys)), "duplicated records"
    assert metrics_by_key(records) == metrics_by_key(local_records)  # bit-identical on CPU


def test_two_workers_give_the_local_records(executor, local_records, tmp_path):
    failures = []
    executor.on_failure = lambda g, e: failures.append(g)
    records = sweep(executor, plan(), stand_in_group, ResultStore(tmp_path / "r.jsonl"))
    _same_records_as_local(records, local_records)
    assert len({r["pid"] for r in records}) == 2  # both workers trained groups
    assert {w["threads"] for w in executor.worker_info.values()} == {1}
    assert sum(r["teacher_cache_hit"] for r in records) >= 6  # groups of a teacher stay on its worker
    assert failures == [] and executor.failures == 0


def test_worker_killed_mid_sweep_loses_and_duplicates_nothing(executor, local_records, tmp_path):
    victim = plan()[3][1]  # second run of the fourth group
    fn = functools.partial(stand_in_group, crash_marker=str(tmp_path / "crashed"), crash_on=config_key(victim))
    before = executor.failures
    records = sweep(executor, plan(), fn, ResultStore(tmp_path / "r.jsonl"))
    assert (tmp_path / "crashed").exists() and executor.failures == before + 1
    _same_records_as_local(records, local_records)


def test_interrupted_driver_loses_nothing_and_rerun_skips_finished(executor, local_records, tmp_path):
    store = ResultStore(tmp_path / "r.jsonl")

    def write_then_interrupt(group, records):
        store.extend(records)
        if len(store.records()) >= 4:
            raise KeyboardInterrupt  # Ctrl-C in the driver; SIGKILL: the slow tests below

    with pytest.raises(KeyboardInterrupt):
        executor.map_groups(plan(), stand_in_group, write_then_interrupt)
    first = store.records()
    records = sweep(executor, plan(), stand_in_group, store)
    assert records[:len(first)] == first  # finished runs kept as written; the rerun adds only the rest
    _same_records_as_local(records, local_records)


def test_error_in_the_group_function_is_raised_in_the_driver(executor):
    def bad(group):
        raise ValueError("width must be positive")

    with pytest.raises(ValueError, match="width must be positive"):
        executor.map_groups(plan(), bad, lambda g, r: None)


def test_goal_search_trains_trials_in_parallel_on_the_workers(executor, tmp_path):
    pytest.importorskip("optuna")
    from limen.verify.infomorphic.search import goal_search
    from limen.verify.infomorphic.train import InfomorphicConfig, train_run

    res = goal_search(4, n_hidden=8, epochs=1, device="cpu", out=tmp_path, executor=executor)
    recs = ResultStore(tmp_path / "search.jsonl").records()
    assert sorted(r["trial"] for r in recs) == [0, 1, 2, 3] == sorted(t["trial"] for t in res["trials"])
    assert len({r["run_info"]["pid"] for r in recs}) == 2  # each batch: one trial per worker
    assert res["best_val_acc"] == max(t["val_acc"] for t in res["trials"])
    best = next(r for r in recs if r["trial"] == res["best_trial"])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:  # the same trial trained here gives the same numbers
        again = train_run(InfomorphicConfig(**best["config"]), device="cpu", keep_atom_history=False)
    finally:
        torch.set_num_threads(threads)
    assert again["metrics"]["val_acc"] == best["metrics"]["val_acc"]


# ----------------------------------------------------------------------------- the real engine

SMALL = dict(data="digits", hidden=(32, 32), teacher_epochs=1, student_epochs=1, noise_steps=5, noise_batch=100,
             eval_noise_batches=2, eval_noise_batch=100)


def _local_sweep(configs, out, **kw):
    from limen.verify.subliminal import run_sweep

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return run_sweep(configs, out=out, device="cpu", progress=False, **kw)
    finally:
        torch.set_num_threads(threads)


def test_digits_sweep_on_ray_equals_the_local_sweep(cluster, tmp_path):
    """Ray and local produce identical records through the same road, measurements included."""
    from limen.verify.subliminal import RunConfig, run_sweep

    configs = [RunConfig(seed=s, m=m, **SMALL) for s in range(2) for m in (5, 10)]  # 2 teachers, each 2 runs
    local = _local_sweep(configs, tmp_path / "local", max_group=1, measures=["check"])
    remote = run_sweep(configs, out=tmp_path / "ray", device="auto", progress=False, max_group=1,
                       executor="ray", executor_options={"num_workers": 2}, measures=["check"])
    assert [r["key"] for r in remote] == [r["key"] for r in local]
    assert [r["metrics"] for r in remote] == [r["metrics"] for r in local]  # bit-identical on CPU
    assert [r["check"] for r in remote] == [r["check"] for r in local]      # measured on the workers
    assert [r["code_version"] for r in remote] == [r["code_version"] for r in local]
    assert len({r["run_info"]["pid"] for r in remote}) == 2
    assert {r["run_info"]["cpu_threads"] for r in remote} == {1}
    assert sum(r["timings"]["teacher_cached"] for r in remote) >= 1  # an m-sweep group found its teacher
    again = run_sweep(configs, out=tmp_path / "ray", progress=False, executor="ray", measures=["check"])
    assert again == remote  # resume: nothing to train


def test_claimed_groups_are_skipped_by_the_workers(executor, local_records, tmp_path):
    """The driver is asked before each group goes out; what another process holds is not trained here."""
    asked, skip = [], {config_key(c) for c in plan()[2]}

    def claim(group):
        asked.append(len(group))
        return [c for c in group if config_key(c) not in skip]

    records = []
    executor.map_groups(plan(), stand_in_group, lambda g, recs: records.extend(recs), claim=claim)
    assert len(asked) == len(plan())
    assert {r["key"] for r in records} == {r["key"] for r in local_records} - skip
    assert metrics_by_key(records) == {k: v for k, v in metrics_by_key(local_records).items() if k not in skip}


def test_an_address_where_no_cluster_listens_fails_fast_naming_it(tmp_path):
    """``--address 127.0.0.1:1`` used to hang for minutes in ray.init, logging retries."""
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "limen.verify", "run", "subliminal", "--seeds", "1", "--hidden", "8,8",
                           "--executor", "ray", "--address", "127.0.0.1:1", "--out", str(tmp_path), "--device", "cpu",
                           "--no-progress"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and time.monotonic() - t0 < 60
    assert "no Ray cluster answers at 127.0.0.1:1" in proc.stderr and "Failed to connect" not in proc.stderr


CLI_ARGS = ["run", "subliminal", "--seeds", "8", "--m", "6", "--hidden", "32,32", "--teacher-epochs", "1",
            "--student-epochs", "1", "--noise-steps", "5", "--noise-batch", "100", "--set", "eval_noise_batches=2",
            "--set", "eval_noise_batch=100", "--max-group", "1", "--no-progress", "--executor", "ray"]


@pytest.mark.slow
def test_killed_cli_driver_loses_nothing_and_rerun_completes(cluster, tmp_path):
    """SIGKILL the driver of ``limen run subliminal --executor ray`` mid-sweep, rerun it, compare with local."""
    from limen.verify.subliminal import RunConfig

    out = tmp_path / "ray"
    cmd = [sys.executable, "-m", "limen.verify", *CLI_ARGS, "--address", cluster, "--out", str(out)]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while len(stored_records(out)) < 2:
            assert proc.poll() is None, "the driver ended before it could be killed"
            assert time.monotonic() < deadline, "no records within 120 s"
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    first = stored_records(out)
    assert 2 <= len(first) < 8
    subprocess.run(cmd, check=True, timeout=300, stdout=subprocess.DEVNULL)
    records = stored_records(out)
    assert records[:len(first)] == first
    keys = [r["key"] for r in records]
    assert len(keys) == len(set(keys)) == 8
    local = _local_sweep([RunConfig(seed=s, m=6, **SMALL) for s in range(8)], tmp_path / "local", max_group=1)
    assert metrics_by_key(records) == metrics_by_key(local)
