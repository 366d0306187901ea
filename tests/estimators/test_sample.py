"""Sample-based I^sx estimator: equality with the dense estimator, gradients, masking, validation."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from limen.estimators.lattice import lattice
from limen.estimators.sample import (dense_histogram, dense_histogram_atoms, dense_histogram_goal, sx_sample_atoms,
                                     sx_sample_goal, sx_sample_redundancies)
from limen.estimators.sx import sx_decomposition


def _case(seed, K, B, n, nb, T, zero_frac=0.3, dtype=torch.float64):
    """Random bins and soft targets with some exact zeros (rows still sum to 1)."""
    rng = np.random.default_rng(seed)
    bins = torch.tensor(rng.integers(0, nb, size=(K, B, n)))
    p = rng.dirichlet(np.ones(T), size=(K, B))
    if T > 1:
        zero = rng.random((K, B, T)) < zero_frac
        zero[..., 0] &= ~zero[..., 1:].all(-1)  # keep at least one positive entry per row
        p = np.where(zero, 0.0, p)
        p /= p.sum(-1, keepdims=True)
    return bins, torch.tensor(p, dtype=dtype)


def _reference(bins, p, nb):
    """Dense numpy float64 reference: atoms and H_res of every neuron's histogram."""
    n = bins.shape[2]
    pmf = dense_histogram(bins, p.double(), nb).numpy()
    d = sx_decomposition(pmf, n_sources=n)
    return np.concatenate([d.atoms, d.h_res[..., None]], -1)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.sampled_from([2, 3]), nb=st.integers(1, 7), K=st.integers(1, 3),
       B=st.integers(1, 40), T=st.integers(1, 3))
def test_atoms_equal_dense_reference(seed, n, nb, K, B, T):
    bins, p = _case(seed, K, B, n, nb, T)
    atoms = sx_sample_atoms(bins, p, nb)
    assert atoms.shape == (K, len(lattice(n).nodes) + 1)
    np.testing.assert_allclose(atoms.numpy(), _reference(bins, p, nb), atol=1e-12, rtol=0)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.sampled_from([2, 3]), nb=st.integers(1, 6), B=st.integers(1, 30),
       sparsity=st.floats(0.0, 1.0))
def test_goal_fast_path_equals_atoms_dot_gamma(seed, n, nb, B, sparsity):
    bins, p = _case(seed, 2, B, n, nb, 2)
    rng = np.random.default_rng(seed + 1)
    gamma = rng.normal(size=len(lattice(n).nodes) + 1)
    gamma[rng.random(gamma.shape) < sparsity] = 0.0
    ref = _reference(bins, p, nb) @ gamma
    np.testing.assert_allclose(sx_sample_goal(bins, p, gamma, nb).numpy(), ref, atol=1e-12, rtol=0)
    np.testing.assert_allclose(dense_histogram_goal(bins, p, gamma, nb).numpy(), ref, atol=1e-12, rtol=0)
    np.testing.assert_allclose(sx_sample_goal(bins, p, torch.tensor(gamma), nb).numpy(), ref, atol=1e-12)


def test_sort_path_and_scatter_path_agree_with_reference():
    # B = 8 < 5**2: pairs and the triple are grouped by sorting; B = 200 >= 25: pairs by scatter
    for B in (8, 200):
        bins, p = _case(3, 3, B, 3, 5, 2)
        np.testing.assert_allclose(sx_sample_atoms(bins, p, 5).numpy(), _reference(bins, p, 5), atol=1e-12)


def test_four_sources():
    bins, p = _case(7, 2, 25, 4, 3, 2)
    np.testing.assert_allclose(sx_sample_atoms(bins, p, 3).numpy(), _reference(bins, p, 3), atol=1e-12)


def test_redundancies_match_atoms_by_mobius():
    bins, p = _case(11, 2, 30, 3, 4, 2)
    red = sx_sample_redundancies(bins, p, 4)
    atoms = sx_sample_atoms(bins, p, 4)[:, :-1]
    L = lattice(3)
    np.testing.assert_allclose(atoms.numpy(), red.numpy() @ np.asarray(L.mobius, float).T, atol=1e-12)
    # single-source redundancy = I(T; S_i); top = I(T; S); H_res = H(T) - I(T; S)
    d = sx_decomposition(dense_histogram(bins, p, 4).numpy(), n_sources=3)
    np.testing.assert_allclose(red[:, L.index(L.top)].numpy(), d.mi, atol=1e-12)


def test_gates_xor_and_and():
    # one sample per realisation of the gate: bins are the source values, p_target one-hot
    xor_bins = torch.tensor([[[0, 0], [0, 1], [1, 0], [1, 1]]])
    xor_t = torch.tensor([[[1.0, 0], [0, 1], [0, 1], [1, 0]]], dtype=torch.float64)
    a = sx_sample_atoms(xor_bins, xor_t, 2)[0].numpy()  # {1}, {2}, {1}{2}, {12}, H_res
    np.testing.assert_allclose(a, [math.log2(1.5), math.log2(1.5), math.log2(2 / 3), math.log2(4 / 3), 0.0],
                               atol=1e-12)
    and_t = torch.tensor([[[1.0, 0], [1, 0], [1, 0], [0, 1]]], dtype=torch.float64)
    a = sx_sample_atoms(xor_bins, and_t, 2)[0].numpy()
    np.testing.assert_allclose(a[:4], [0.188722, 0.188722, 0.122556, 0.311278], atol=1e-6)


def test_soft_targets_equal_weighted_hard_samples():
    # a soft sample [1-θ, θ] is the mixture of two hard samples: duplicate rows with weights
    bins, _ = _case(5, 1, 20, 3, 3, 2)
    # rational θ = k/4 so that 4 hard copies reproduce it exactly
    k = torch.randint(0, 5, (1, 20))
    theta = k.double() / 4
    soft = torch.stack([1 - theta, theta], -1)
    reps_b = bins.repeat_interleave(4, 1)
    hard = torch.zeros(1, 80, 2, dtype=torch.float64)
    for b in range(20):
        for j in range(4):
            hard[0, 4 * b + j, 1 if j < k[0, b] else 0] = 1.0
    np.testing.assert_allclose(sx_sample_atoms(bins, soft, 3).numpy(), sx_sample_atoms(reps_b, hard, 3).numpy(),
                               atol=1e-12)


@pytest.mark.parametrize("n", [2, 3])
def test_gradcheck_wrt_p_target(n):
    bins, _ = _case(1, 1, 10, n, 3, 2)
    p = torch.distributions.Dirichlet(torch.ones(2, dtype=torch.float64)).sample((1, 10)).requires_grad_(True)
    gamma = np.random.default_rng(0).normal(size=len(lattice(n).nodes) + 1)
    assert torch.autograd.gradcheck(lambda q: sx_sample_atoms(bins, q, 3, validate=False), (p,))
    assert torch.autograd.gradcheck(lambda q: sx_sample_goal(bins, q, gamma, 3, validate=False), (p,))


def test_gradient_equals_dense_gradient_with_zero_targets():
    # θ exactly 0 or 1 for some samples: p_target has zeros; the gradient must still equal the
    # dense estimator's (which masks empty cells but keeps occupied cells' terms)
    torch.manual_seed(0)
    bins = torch.randint(0, 4, (3, 40, 3))
    theta = torch.rand(3, 40, dtype=torch.float64)
    theta[0, :5] = 0.0
    theta[1, :5] = 1.0
    theta.requires_grad_(True)
    gamma = np.random.default_rng(2).normal(size=19)
    p = lambda t: torch.stack([1 - t, t], -1)  # noqa: E731
    g_sparse = torch.autograd.grad(sx_sample_goal(bins, p(theta), gamma, 4).sum(), theta)[0]
    g_dense = torch.autograd.grad(dense_histogram_goal(bins, p(theta), gamma, 4).sum(), theta)[0]
    g_atoms = torch.autograd.grad((dense_histogram_atoms(bins, p(theta), 4) @ torch.tensor(gamma)).sum(), theta)[0]
    assert torch.isfinite(g_sparse).all()
    torch.testing.assert_close(g_sparse, g_dense, atol=1e-12, rtol=0)
    torch.testing.assert_close(g_sparse, g_atoms, atol=1e-12, rtol=0)


def test_zero_probability_targets_are_masked_not_patched():
    # a target value that never occurs: H(T) counts only the other; every atom stays finite,
    # and the result equals the same problem without that target column
    bins, p = _case(9, 2, 30, 3, 3, 2, zero_frac=0.0)
    p3 = torch.cat([p, torch.zeros(2, 30, 1, dtype=p.dtype)], -1)
    a2, a3 = sx_sample_atoms(bins, p, 3), sx_sample_atoms(bins, p3, 3)
    assert torch.isfinite(a3).all()
    torch.testing.assert_close(a2, a3, atol=1e-12, rtol=0)
    # deterministic target: every atom and H_res are 0
    det = torch.zeros(2, 30, 2, dtype=torch.float64)
    det[..., 0] = 1.0
    torch.testing.assert_close(sx_sample_atoms(bins, det, 3), torch.zeros(2, 19, dtype=torch.float64),
                               atol=1e-12, rtol=0)
    pd = det.clone().requires_grad_(True)
    sx_sample_goal(bins, pd, np.ones(19), 3).sum().backward()
    assert torch.isfinite(pd.grad).all()


def test_float32_close_to_float64():
    bins, p = _case(4, 4, 256, 3, 20, 2, zero_frac=0.05)
    a64 = sx_sample_atoms(bins, p, 20)
    a32 = sx_sample_atoms(bins, p.float(), 20)
    assert a32.dtype == torch.float32
    np.testing.assert_allclose(a32.double().numpy(), a64.numpy(), atol=2e-4)


def test_never_builds_the_dense_grid():
    # 10**6 bins per source: the dense grid would have 10**18 cells per neuron
    rng = np.random.default_rng(0)
    bins = torch.tensor(rng.integers(0, 10**6, size=(2, 64, 3)))
    bins[:, 32:] = bins[:, :32]  # shared cells, so the atoms are not trivial
    p = torch.tensor(rng.dirichlet([1, 1], size=(2, 64)))
    a = sx_sample_atoms(bins, p, 10**6)
    assert torch.isfinite(a).all()
    # relabelling the bins (a bijection per source) leaves the atoms unchanged
    small = torch.stack([torch.unique(bins[k, :, i], return_inverse=True)[1] for k in range(2) for i in range(3)])
    small = small.reshape(2, 3, 64).transpose(1, 2)
    np.testing.assert_allclose(a.numpy(), sx_sample_atoms(small, p, 64).numpy(), atol=1e-12)


def test_neurons_are_independent():
    bins, p = _case(13, 3, 25, 3, 4, 2)
    full = sx_sample_atoms(bins, p, 4)
    for k in range(3):
        torch.testing.assert_close(full[k:k + 1], sx_sample_atoms(bins[k:k + 1], p[k:k + 1], 4), atol=1e-12, rtol=0)


@pytest.mark.parametrize("bad, match", [
    (lambda b, p: (b[0], p), "shape"),
    (lambda b, p: (b, p[:, :5]), "disagree"),
    (lambda b, p: (b + 4, p), r"lie in \[0, 4\)"),
    (lambda b, p: (b - 1, p), r"lie in \[0, 4\)"),
    (lambda b, p: (b, p * 1.1), "sum to 1"),
    (lambda b, p: (b, p - p), "sum to 1"),
    (lambda b, p: (b, torch.where(p > 0.5, -p, p)), "negative"),
    (lambda b, p: (b, torch.full_like(p, float("nan"))), "NaN"),
    (lambda b, p: (b.double(), p), "integer"),
    (lambda b, p: (b, p.long()), "floating"),
    (lambda b, p: (b[..., :1], p), "2, 3 or 4 sources"),
])
def test_validation_errors(bad, match):
    bins, p = _case(0, 2, 10, 3, 4, 2, zero_frac=0.0)
    b2, p2 = bad(bins, p)
    with pytest.raises(ValueError, match=match):
        sx_sample_atoms(b2, p2, 4)
    with pytest.raises(ValueError, match=match):
        sx_sample_goal(b2, p2, np.ones(19), 4)


def test_gamma_validation():
    bins, p = _case(0, 2, 10, 3, 4, 2)
    with pytest.raises(ValueError, match="19 entries"):
        sx_sample_goal(bins, p, np.ones(18), 4)
    with pytest.raises(ValueError, match="NaN"):
        sx_sample_goal(bins, p, np.full(19, np.nan), 4)
    with pytest.raises(ValueError, match="5 entries"):
        dense_histogram_goal(bins[..., :2], p, np.ones(19), 4)


@pytest.mark.gpu
def test_cuda_matches_cpu():
    bins, p = _case(21, 50, 512, 3, 20, 2, zero_frac=0.02)
    gamma = np.random.default_rng(1).normal(size=19)
    cpu = sx_sample_goal(bins, p, gamma, 20)
    gpu = sx_sample_goal(bins.cuda(), p.cuda(), gamma, 20)
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-10, rtol=0)
