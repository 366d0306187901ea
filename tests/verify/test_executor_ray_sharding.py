"""Teacher-affinity sharding (pure Python, no Ray) and the no-Ray install message."""

import subprocess
import sys

import pytest

from limen.verify.executors import get_executor
from limen.verify.sharding import ShardQueue, split_to_fill


def _drain(queue, worker):
    out = []
    while (i := queue.next_for(worker)) is not None:
        out.append(i)
    return out


def test_worker_keeps_its_shard_then_claims_the_largest_unclaimed():
    groups = [["t0"], ["t1", "t1"], ["t0"], ["t1"], ["t2"]]
    q = ShardQueue(groups, affinity=lambda g: g[0])
    assert q.n_shards == 3 and len(q) == 5
    assert q.next_for("a") == 1          # t1 has the most runs left (3)
    assert q.next_for("b") == 0          # then t0 (2 runs)
    assert q.next_for("a") == 3          # a stays on t1: its cached teacher is reused
    assert q.next_for("b") == 2          # b stays on t0
    assert q.next_for("a") == 4          # t1 exhausted: a claims t2
    assert q.next_for("b") is None and len(q) == 0


def test_idle_worker_steals_from_the_end_of_the_longest_shard():
    groups = [["t0"]] * 4 + [["t1"]]
    q = ShardQueue(groups, affinity=lambda g: g[0])
    assert q.next_for("a") == 0
    assert q.next_for("b") == 4
    assert q.next_for("b") == 3          # nothing unclaimed: steal t0's last group
    assert q.next_for("a") == 1


def test_requeue_and_release_after_a_worker_dies():
    groups = [["t0"], ["t0"], ["t1"]]
    q = ShardQueue(groups, affinity=lambda g: g[0])
    assert q.next_for("a") == 0
    q.requeue(0)
    q.release("a")
    assert q.next_for("b") == 0          # the lost group comes first, its shard re-claimed
    assert q.next_for("b") == 1
    assert _drain(q, "c") == [2]
    assert len(q) == 0


def test_no_affinity_means_one_shard_per_group_in_plan_order_when_equal():
    q = ShardQueue([[1], [2], [3]])
    assert q.n_shards == 3
    assert _drain(q, "a") == [0, 1, 2]


def test_every_group_is_handed_out_exactly_once():
    groups = [[k] * (1 + i % 3) for i, k in enumerate("aabbbcdddde")]
    q = ShardQueue(groups, affinity=lambda g: g[0])
    got, workers = [], ["w0", "w1", "w2"]
    step = 0
    while len(q):
        i = q.next_for(workers[step % 3])
        if i is not None:
            got.append(i)
        step += 1
    assert sorted(got) == list(range(len(groups)))


def test_ray_executor_without_ray_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    monkeypatch.delitem(sys.modules, "limen.verify.executor_ray", raising=False)
    with pytest.raises(ValueError, match=r"pip install 'limen\[ray\]'"):
        get_executor("ray", address="auto")


def test_importing_limen_verify_never_imports_ray():
    code = ("import sys, limen.verify, limen.verify.executors, limen.verify.sharding, limen.verify.cli; "
            "assert 'ray' not in sys.modules, 'ray imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_split_to_fill_only_splits_when_workers_would_idle():
    assert split_to_fill([[1, 2, 3, 4, 5]], 2) == [[1, 2, 3], [4, 5]]
    assert split_to_fill([[1, 2, 3, 4], [5]], 3) == [[1, 2], [3, 4], [5]]
    assert split_to_fill([[1], [2]], 4) == [[1], [2]]             # nothing left to split
    big = [list(range(10)), list(range(10, 20))]
    assert split_to_fill(big, 2) == big                           # enough groups: batching untouched
