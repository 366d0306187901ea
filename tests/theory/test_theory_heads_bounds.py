"""Random heads (Monte Carlo with confidence intervals), compatibility, bounds and the kernel form."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from limen import theory
from limen.theory.heads import monte_carlo_transfer_fraction

Z999 = 3.29  # two-sided 99.9 % normal quantile


@pytest.mark.parametrize("law", ["gaussian", "uniform"])
@pytest.mark.parametrize("m,d", [(3, 8), (8, 8), (13, 8), (10, 40)])
def test_expected_projector_monte_carlo_ci(law, m, d):
    """E[vᵀ P_A v] = min(m,d)/d for a fixed unit v, as a 99.9 % CI over 3000 heads (fixed seed)."""
    rng = np.random.default_rng(1000 * m + d)
    for v in (np.eye(d)[0], np.ones(d)):  # a coordinate axis and the diagonal: both exact, even for U(±1/√d)
        mc = monte_carlo_transfer_fraction(rng, m, d, R=3000, law=law, v=v)
        lo, hi = mc["mean"] - Z999 * mc["sem"], mc["mean"] + Z999 * mc["sem"]
        pred = theory.transfer_fraction_expected(m, d)
        if m >= d:
            assert abs(mc["mean"] - pred) <= 1e-12  # P_A = I: no randomness left
            continue
        assert lo <= pred <= hi, (mc["mean"], mc["sem"], pred)
        # the interval is narrow enough to reject a formula off by 0.03 (e.g. (m+1)/(d+1) at m=3, d=8):
        # the assertion above can genuinely fail
        assert not (lo <= pred + 0.03 <= hi) and not (lo <= pred - 0.03 <= hi)


def test_transfer_fraction_rejects_m_over_d_for_wide_heads():
    assert theory.transfer_fraction_expected(20, 8) == 1.0
    assert theory.transfer_fraction_variance(20, 8) == 0.0
    assert np.allclose(theory.transfer_fraction_expected(np.array([1, 8, 64]), 8), [1 / 8, 1, 1])


@pytest.mark.parametrize("m,d", [(2, 10), (5, 10), (9, 10)])
def test_transfer_fraction_variance_ci(m, d):
    rng = np.random.default_rng(m)
    mc = monte_carlo_transfer_fraction(rng, m, d, R=6000, law="gaussian", v=rng.standard_normal(d))
    assert abs(mc["var"] - mc["var_predicted"]) <= Z999 * mc["var_sem"]


@settings(max_examples=20, deadline=None)
@given(m=st.integers(1, 9), d=st.integers(2, 9), K=st.integers(1, 5), seed=st.integers(0, 2**31 - 1))
def test_head_overlap_identities(m, d, K, seed):
    rng = np.random.default_rng(seed)
    A, C = rng.standard_normal((m, d)), rng.standard_normal((K, d))
    tau = theory.head_overlap(C, A)
    assert -1e-12 <= tau <= 1 + 1e-12
    P = theory.projector(A)
    assert tau == pytest.approx(np.trace(C @ P @ C.T) / np.trace(C @ C.T), abs=1e-12)
    if m >= d:
        assert tau == pytest.approx(1.0, abs=1e-12)
    if K <= d:  # orthonormal rows: τ = mean cos² of principal angles
        Q = np.linalg.qr(C.T)[0].T
        th = theory.principal_angles(Q, A)
        assert theory.head_overlap(Q, A) == pytest.approx(np.sum(np.cos(th) ** 2) / K, abs=1e-12)
        assert np.all(np.diff(th) >= -1e-15)
    assert theory.head_overlap_variance(C, m) >= -1e-15


@settings(max_examples=20, deadline=None)
@given(m=st.integers(1, 8), d=st.integers(1, 8), K=st.integers(1, 4), seed=st.integers(0, 2**31 - 1))
def test_decomposition_and_bounds_hold_for_any_heads(m, d, K, seed):
    rng = np.random.default_rng(seed)
    B = 6
    h0, hT = rng.standard_normal((B, d)), rng.standard_normal((B, d))
    A_S, A_T = rng.standard_normal((m, d)), rng.standard_normal((m, d))
    C_S, C_T = rng.standard_normal((K, d)), rng.standard_normal((K, d))
    a_S, a_T, c_S, c_T = (rng.standard_normal(k) for k in (m, m, K, K))
    t = theory.logit_error_decomposition(h0, hT, C_S, A_S, C_T, A_T, a_S, a_T, c_S, c_T)
    parts = sum(v for k, v in t.items() if k != "total")
    assert np.max(np.abs(parts - t["total"])) <= 1e-9 * max(1.0, np.abs(t["total"]).max())
    Bx = theory.logit_error_bound(h0, hT, C_S, A_S, C_T, A_T, a_S, a_T, c_S, c_T)
    assert np.all(np.abs(t["total"]).max(axis=1) <= Bx * (1 + 1e-12) + 1e-12)
    ap = theory.aux_perturbation_bound(A_S, A_T, hT, a_S, a_T)
    assert np.all(ap["error"] <= ap["bound"] * (1 + 1e-12) + 1e-12)
    # student logits = teacher logits + error: the margin bound never certifies a disagreement
    yT = hT @ C_T.T + c_T
    yS = yT + t["total"]
    mb = theory.margin_bound(yT, Bx)
    assert np.all(np.argmax(yS, 1)[mb["guaranteed"]] == np.argmax(yT, 1)[mb["guaranteed"]])


def test_margin_bound_accuracy_forms():
    y = np.array([[3.0, 1.0, 0.0], [0.5, 0.4, 0.0], [0.0, 2.0, 1.0]])
    r = theory.margin_bound(y, 0.4, labels=[0, 1, 2])
    assert list(r["margin"]) == pytest.approx([2.0, 0.1, 1.0])
    assert list(r["guaranteed"]) == [True, False, True]
    assert r["teacher_accuracy"] == pytest.approx(1 / 3)
    assert r["accuracy_lower_bound"] == pytest.approx(1 / 3)
    assert r["accuracy_lower_bound_r61"] == pytest.approx(0.0)


def test_compatibility_predicates():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((4, 7))
    assert theory.is_aux_compatible(A, A)
    assert not theory.is_aux_compatible(A, A + 0.1 * rng.standard_normal((4, 7)))
    assert not theory.is_aux_compatible(A, A, a_S=np.zeros(4), a_T=np.ones(4))
    C = rng.standard_normal((3, 7))
    P = theory.projector(A)
    assert theory.is_class_compatible(C, C + rng.standard_normal((3, 7)) @ (np.eye(7) - P), A)
    assert not theory.is_class_compatible(C, C + rng.standard_normal((3, 7)), A)


def test_sigma_critical_values_and_epsilon():
    s = theory.aux_perturbation_sigma_critical(10, 256)
    assert s == pytest.approx((1 - np.sqrt(10 / 256)) / (np.sqrt(3) * (np.sqrt(10) + 16)), rel=1e-12)
    assert theory.aux_perturbation_epsilon(s, 10, 256) == pytest.approx(1.0)
    assert theory.aux_perturbation_epsilon(0.2, 10, 256) == pytest.approx(0.2 / s)  # ≈ 8.3 at the end of the Fig 5 grid
    assert theory.aux_perturbation_sigma_critical(256, 256) == 0.0  # m = d: ill-conditioned head, no margin
    # symmetric in (m, d) with the same init scale
    assert theory.aux_perturbation_sigma_critical(50, 10, init_scale=0.1) == pytest.approx(
        theory.aux_perturbation_sigma_critical(10, 50, init_scale=0.1))
    typ = theory.aux_perturbation_sigma_critical(10, 256, kind="typical", rho=1.0)
    assert typ == pytest.approx(np.sqrt(245 / 256) / np.sqrt(3 * 256), rel=1e-12)
    with pytest.raises(ValueError):
        theory.aux_perturbation_sigma_critical(10, 256, kind="median")


def test_width_and_noise_budget_bounds():
    assert theory.width_bound(8, 10)["exact"] and theory.width_bound(8, 10)["lost_fraction"] == 0.0
    wb = theory.width_bound(256, 10)
    assert not wb["exact"] and wb["lost_fraction"] == pytest.approx(1 - 10 / 256)
    nb = theory.noise_budget_bound(500, 784)
    assert not nb["exact"] and nb["transferred_fraction"] == pytest.approx(500 / 784)
    assert theory.noise_budget_bound(1000, 784)["exact"]
    assert theory.expected_transferred_map(10, 256, 500, 784) == pytest.approx(10 / 256 * 500 / 784)


def test_kernel_cross_kernel_and_linear_reduction():
    rng = np.random.default_rng(1)
    d, m, K, n, N = 5, 3, 4, 6, 4
    A, C = rng.standard_normal((m, d)), rng.standard_normal((K, d))
    X, Xt = rng.standard_normal((n, N)), rng.standard_normal((n, 3))
    Kb = theory.linear_body_kernel(Xt, X, d)
    assert Kb.shape == (3, N, d, d)
    assert np.allclose(theory.cross_kernel(C, Kb, A)[1, 2], (Xt[:, 1] @ X[:, 2]) * C @ A.T)
    W0, WT = rng.standard_normal((d, n)), rng.standard_normal((d, n))
    r0 = (A @ (W0 - WT) @ X).T
    y = theory.ntk_fixed_point_logits(C, A, Kb, theory.linear_body_kernel(X, X, d), r0, (C @ W0 @ Xt).T)
    assert np.max(np.abs(y - (C @ theory.fixed_point(W0, WT, A, X) @ Xt).T)) <= 1e-9
    # the trajectory of the kernel form equals the linear GD trajectory's class logits
    lr = 0.5 * theory.gd_stability_limit(A, X)
    traj = theory.ntk_trajectory(C, A, Kb, theory.linear_body_kernel(X, X, d), r0, lr, 30, (C @ W0 @ Xt).T)
    Wk = theory.gd_trajectory(W0, WT, A, X, lr, 30)
    assert np.max(np.abs(traj - np.einsum("kd,sdn,nt->stk", C, Wk, Xt))) <= 1e-9
