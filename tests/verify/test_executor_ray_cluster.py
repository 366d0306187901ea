"""A real multi-process Ray cluster on this machine: ``ray start --head`` plus two ``ray start --address``
worker nodes, a sweep through ``limen run subliminal --executor ray --address``, one worker node
killed mid-sweep; the records must equal a local run's. Slow (starting the nodes takes ~30 s).

Every process the test starts is stopped by its own process group at the end (never ``ray stop``,
which would stop every Ray instance of the machine), and Ray's files (sessions, and the
``ray_current_cluster`` address file that a later ``ray.init()`` would follow) go to a temporary
``RAY_TMPDIR`` removed afterwards. The sequence is the one in docs/distributed.md.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from stored import stored_records  # tests/verify/stored.py

pytestmark = pytest.mark.slow
pytest.importorskip("ray")

SMALL = dict(data="digits", hidden=(32, 32), teacher_epochs=1, student_epochs=2, noise_steps=20, noise_batch=100,
             eval_noise_batches=2, eval_noise_batch=100)
SEEDS = 16   # enough runs that the node killed still has work when both workers have trained
RAY = [sys.executable, "-m", "ray.scripts.scripts"]


@pytest.fixture
def ray_env():
    """Environment of the cluster's processes, with a short RAY_TMPDIR of its own (socket paths are short)."""
    tmp = tempfile.mkdtemp(prefix="limen-ray-", dir="/tmp")
    env = {k: v for k, v in os.environ.items()
           if k != "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"}  # test_executor_ray sets it to 0 (single-machine mode)
    yield {**env, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0", "OMP_NUM_THREADS": "1",
           "RAY_TMPDIR": tmp}
    shutil.rmtree(tmp, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _node(args: list[str], log: Path, env: dict) -> subprocess.Popen:
    """``ray start ... --block`` in a process group of its own (killing the group kills the node)."""
    return subprocess.Popen([*RAY, "start", *args, "--disable-usage-stats", "--block"], env=env,
                            stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)


def _stop(proc: subprocess.Popen, sig=signal.SIGTERM) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


def _cpus(address: str, env: dict) -> float:
    """CPUs of the cluster at ``address`` (-1 while it does not answer)."""
    code = ("import logging, ray; ray.init(address=%r, logging_level=logging.ERROR); "
            "print(ray.cluster_resources().get('CPU', 0))" % address)
    try:
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return -1.0
    return float(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 and out.stdout.strip() else -1.0


def _wait_for(address: str, cpus: int, nodes: list[subprocess.Popen], log: Path, env: dict) -> None:
    deadline = time.monotonic() + 180
    while _cpus(address, env) < cpus:
        assert all(n.poll() is None for n in nodes), log.read_text()[-3000:]
        assert time.monotonic() < deadline, f"the cluster did not reach {cpus} worker CPU(s) in 180 s"
        time.sleep(1)


def test_a_sweep_on_a_real_cluster_survives_a_lost_worker_node(tmp_path, ray_env):
    import torch

    from limen.verify.subliminal import RunConfig, run_sweep

    port = _free_port()
    address = f"127.0.0.1:{port}"
    nodes = [_node(["--head", "--node-ip-address", "127.0.0.1", "--port", str(port), "--num-cpus", "0",
                    "--include-dashboard", "false"], tmp_path / "head.log", ray_env)]
    try:
        _wait_for(address, 0, nodes, tmp_path / "head.log", ray_env)
        for i in range(2):  # one at a time: nodes starting together can time out on a busy machine
            nodes.append(_node(["--address", address, "--node-ip-address", "127.0.0.1", "--num-cpus", "1"],
                               tmp_path / f"worker{i}.log", ray_env))
            _wait_for(address, i + 1, nodes, tmp_path / f"worker{i}.log", ray_env)

        out = tmp_path / "ray"
        cmd = [sys.executable, "-m", "limen.verify", "run", "subliminal", "--seeds", str(SEEDS), "--m", "6",
               "--hidden", "32,32", "--teacher-epochs", "1", "--student-epochs", "2", "--noise-steps", "20",
               "--noise-batch", "100", "--set", "eval_noise_batches=2", "--set", "eval_noise_batch=100",
               "--max-group", "1", "--no-progress", "--executor", "ray", "--address", address, "--out", str(out)]
        driver = subprocess.Popen(cmd, env=ray_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  start_new_session=True)
        try:
            deadline = time.monotonic() + 300
            # the premise: both worker nodes are training (a worker's first import of torch can lag the other's
            # first records), so that the node killed next holds work in flight
            done = stored_records(out)
            while len({r["run_info"]["pid"] for r in done}) < 2:
                assert driver.poll() is None, driver.communicate()
                assert time.monotonic() < deadline, "no records from two workers within 300 s"
                time.sleep(0.05)
                done = stored_records(out)
            assert len(done) <= SEEDS - 4, f"the second worker started after {len(done)} of {SEEDS} runs"
            _stop(nodes.pop(), signal.SIGKILL)  # a worker node lost mid-sweep (its raylet and workers)
            stdout, stderr = driver.communicate(timeout=600)
        finally:
            _stop(driver, signal.SIGKILL)
        assert driver.returncode == 0, stderr[-3000:]
        assert f"{SEEDS} records in" in stderr
        assert "a Ray worker died" in stderr  # the lost node's group went back to the queue
        records = stored_records(out)
        assert sorted(r["seed"] for r in records) == list(range(SEEDS))   # each run once, none lost
    finally:
        for node in reversed(nodes):
            _stop(node)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a CPU worker runs torch with 1 thread: same floats
    try:
        local = run_sweep([RunConfig(seed=s, m=6, **SMALL) for s in range(SEEDS)], tmp_path / "local",
                          device="cpu", progress=False, max_group=1)
    finally:
        torch.set_num_threads(threads)
    assert {r["key"]: r["metrics"] for r in records} == {r["key"]: r["metrics"] for r in local}
