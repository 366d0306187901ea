"""GPU-only checks (skipped without CUDA): batching, determinism and the fused Philox noise."""

import math

import pytest
import torch

from limen.verify.subliminal import TeacherCache, train_group

pytestmark = pytest.mark.gpu


def _close(a: dict, b: dict, tol: float):
    for k, v in a.items():
        if isinstance(v, float) and math.isfinite(v):
            assert b[k] == pytest.approx(v, rel=tol, abs=tol), k


def test_gpu_ensemble_matches_separate_runs_for_short_training(tiny):
    group = [tiny(seed=0, m=3, hidden=(256, 256)), tiny(seed=1, m=10, hidden=(256, 256), init="random,random,A,A")]
    together = train_group(group, "cuda", cache=TeacherCache())
    again = train_group(group, "cuda", cache=TeacherCache())
    assert [r["metrics"] for r in together] == [r["metrics"] for r in again]  # deterministic on one device
    for cfg, rec in zip(group, together):
        alone = train_group([cfg], "cuda", cache=TeacherCache())[0]
        _close(rec["metrics"], alone["metrics"], 1e-3)  # kernels differ by batch shape: last bits only


def test_philox_noise_is_per_member_and_uniform():
    from limen.verify.subliminal.noise import draw_philox, philox_available, philox_keys
    if not philox_available("cuda"):
        pytest.skip("Triton not available")
    keys = philox_keys([11, 22, 33, 44], "cuda")
    full = draw_philox("uniform", keys, 7, 1000, (1, 28, 28))
    part = draw_philox("uniform", keys[2:], 7, 1000, (1, 28, 28))
    assert torch.equal(full[2:], part)                       # independent of the other members
    assert not torch.equal(full[0], full[1])
    assert not torch.equal(full, draw_philox("uniform", keys, 8, 1000, (1, 28, 28)))  # new noise each step
    assert abs(full.mean().item()) < 5e-3 and abs(full.var().item() - 1 / 3) < 5e-3
    assert full.min() >= -1 and full.max() < 1
    normal = draw_philox("normal", keys, 0, 1000, (784,))
    assert abs(normal.mean().item()) < 5e-3 and abs(normal.std().item() - 1) < 5e-3
