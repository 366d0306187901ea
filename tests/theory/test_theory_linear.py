"""Linear split-head model: closed forms against simulated training (numpy and torch, float64)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from limen import theory

# (m, d, n_in, N): m < d, m = d, m > d; N < n_in, N = n_in, N > n_in
SHAPES = [(2, 6, 5, 3), (3, 6, 5, 8), (6, 6, 5, 5), (6, 6, 4, 7), (9, 6, 5, 8), (9, 5, 7, 4)]


def well_conditioned(rng, rows, cols, lo=0.7, hi=1.4):
    """A random matrix with singular values in [lo, hi] (random singular vectors)."""
    k = min(rows, cols)
    U = np.linalg.qr(rng.standard_normal((rows, rows)))[0][:, :k]
    V = np.linalg.qr(rng.standard_normal((cols, cols)))[0][:, :k]
    return U @ np.diag(rng.uniform(lo, hi, k)) @ V.T


def problem(rng, m, d, n, N, conditioned=True):
    if conditioned:
        A, X = well_conditioned(rng, m, d), well_conditioned(rng, n, N)
    else:
        A, X = rng.standard_normal((m, d)), rng.standard_normal((n, N))
    return A, rng.standard_normal((d, n)), rng.standard_normal((d, n)), X


def simulate_gd(W0, WT, A, X, lr, steps):
    """Plain full-batch GD on L = mean over N×m of (A W X − A W_T X)², gradient by hand."""
    m, N = A.shape[0], X.shape[1]
    W, out = W0.copy(), [W0.copy()]
    for _ in range(steps):
        W = W - lr * (2.0 / (m * N)) * A.T @ (A @ (W - WT) @ X) @ X.T
        out.append(W.copy())
    return np.stack(out)


@settings(max_examples=25, deadline=None)
@given(shape=st.sampled_from(SHAPES), seed=st.integers(0, 2**31 - 1), frac=st.floats(0.1, 0.95))
def test_gd_follows_closed_form_every_step(shape, seed, frac):
    rng = np.random.default_rng(seed)
    A, W0, WT, X = problem(rng, *shape, conditioned=False)
    lr = frac * theory.gd_stability_limit(A, X)
    sim = simulate_gd(W0, WT, A, X, lr, 150)
    pred = theory.gd_trajectory(W0, WT, A, X, lr, 150)
    assert pred.shape == sim.shape
    assert np.max(np.abs(sim - pred)) <= 1e-9 * max(1.0, np.abs(sim).max())


@pytest.mark.parametrize("shape", SHAPES)
def test_gd_reaches_fixed_point(shape):
    rng = np.random.default_rng(sum(shape))
    A, W0, WT, X = problem(rng, *shape)
    lr = 0.9 * theory.gd_stability_limit(A, X)
    steps = int(theory.transfer_time(A, X, 1 - 1e-10, lr=lr))
    assert steps < 5000
    W = simulate_gd(W0, WT, A, X, lr, steps)[-1]
    W_inf = theory.fixed_point(W0, WT, A, X)
    assert np.max(np.abs(W - W_inf)) <= 1e-6
    # the untransferable components never moved
    PA, PX = theory.projector(A), theory.span_projector(X)
    assert np.max(np.abs((W - W0) - PA @ (W - W0) @ PX)) <= 1e-9


def test_fixed_point_independent_of_step_and_normalisation():
    rng = np.random.default_rng(5)
    A, W0, WT, X = problem(rng, 3, 6, 5, 4)
    W_inf = theory.fixed_point(W0, WT, A, X)
    for red in ("mean", "sum", 0.37):
        lim = theory.gd_stability_limit(A, X, reduction=red)
        for frac in (0.2, 0.9):
            lr = frac * lim
            k = int(theory.transfer_time(A, X, 1 - 1e-13, lr=lr, reduction=red))
            assert np.max(np.abs(theory.gd_iterate(W0, WT, A, X, lr, k, reduction=red) - W_inf)) <= 1e-9


def test_stability_limit_is_sharp():
    rng = np.random.default_rng(1)
    A, W0, WT, X = problem(rng, 4, 6, 5, 7, conditioned=False)
    lim = theory.gd_stability_limit(A, X)
    m, N = A.shape[0], X.shape[1]
    assert lim == pytest.approx(m * N / (np.linalg.norm(A, 2) ** 2 * np.linalg.norm(X, 2) ** 2), rel=1e-12)
    gap0 = np.linalg.norm(W0 - theory.fixed_point(W0, WT, A, X))
    below = simulate_gd(W0, WT, A, X, 0.99 * lim, 3000)[-1]
    above = simulate_gd(W0, WT, A, X, 1.01 * lim, 3000)[-1]
    assert np.linalg.norm(below - theory.fixed_point(W0, WT, A, X)) < 1e-3 * gap0
    assert np.linalg.norm(above - WT) > 1e3 * gap0


def test_gradient_flow_limit_and_time_units():
    rng = np.random.default_rng(2)
    A, W0, WT, X = problem(rng, 2, 5, 4, 6)
    # small steps: GD after k steps ≈ flow at t = lr·k (first-order agreement)
    lr = 1e-3 * theory.gd_stability_limit(A, X)
    k = 2000
    gd = theory.gd_iterate(W0, WT, A, X, lr, k)
    flow = theory.gradient_flow(W0, WT, A, X, lr * k)
    assert np.max(np.abs(gd - flow)) < 1e-3 * np.max(np.abs(W0 - WT))
    t_big = theory.transfer_time(A, X, 1 - 1e-14)
    assert np.max(np.abs(theory.gradient_flow(W0, WT, A, X, t_big) - theory.fixed_point(W0, WT, A, X))) <= 1e-9
    traj = theory.gradient_flow(W0, WT, A, X, np.array([0.0, 1.0, 2.0]))
    assert traj.shape == (3,) + W0.shape and np.allclose(traj[0], W0, atol=1e-12)


def test_torch_mse_loss_sgd_matches_closed_form():
    """The engine's normalisation: torch F.mse_loss (mean over batch × m), plain SGD, float64."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(3)
    A, W0, WT, X = problem(rng, 3, 6, 5, 8, conditioned=False)
    lr = 0.8 * theory.gd_stability_limit(A, X)
    At, WTt, Xt = (torch.tensor(v, dtype=torch.float64) for v in (A, WT, X))
    W = torch.tensor(W0, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.SGD([W], lr=lr)
    got = [W0.copy()]
    for _ in range(60):
        opt.zero_grad()
        # student/teacher aux logits as (batch, m), the protocol's layout
        F.mse_loss((At @ W @ Xt).T, (At @ WTt @ Xt).T).backward()
        opt.step()
        got.append(W.detach().numpy().copy())
    pred = theory.gd_trajectory(W0, WT, A, X, lr, 60)
    assert np.max(np.abs(np.stack(got) - pred)) <= 1e-9 * max(1.0, np.abs(pred).max())


def adam(W0, WT, A, X, lr, steps, betas=(0.9, 0.999), eps=1e-8):
    """torch.optim.Adam's update (bias-corrected), in numpy float64, with a quadratic decay of lr to 0."""
    m, N = A.shape[0], X.shape[1]
    W, mom, vel = W0.copy(), np.zeros_like(W0), np.zeros_like(W0)
    for t in range(1, steps + 1):
        g = (2.0 / (m * N)) * A.T @ (A @ (W - WT) @ X) @ X.T
        mom = betas[0] * mom + (1 - betas[0]) * g
        vel = betas[1] * vel + (1 - betas[1]) * g * g
        step = lr * (1 - (t - 1) / steps) ** 2
        W = W - step * (mom / (1 - betas[0] ** t)) / (np.sqrt(vel / (1 - betas[1] ** t)) + eps)
    return W


@pytest.mark.parametrize("shape", SHAPES)
def test_adam_lands_in_the_solution_set_not_on_the_gd_point(shape, record_property):
    """Adam: same transferred block P_A W_T P_X as GD, different free components -- measured, not assumed equal."""
    rng = np.random.default_rng(10 + sum(shape))
    A, W0, WT, X = problem(rng, *shape)
    W = adam(W0, WT, A, X, 3e-2, 3000)
    W_inf = theory.fixed_point(W0, WT, A, X)
    PA, PX = theory.projector(A), theory.span_projector(X)
    scale = np.linalg.norm(WT - W0)
    block = np.linalg.norm(PA @ (W - WT) @ PX) / scale          # 0 on the solution set (solution-set result)
    dist = np.linalg.norm(W - W_inf) / np.linalg.norm(W_inf - W0 if np.any(W_inf != W0) else WT - W0)
    record_property("adam_relative_distance_to_W_inf", float(dist))
    record_property("adam_block_residual", float(block))
    print(f"Adam {shape}: relative distance to GD fixed point {dist:.3g}, block residual {block:.2e}")
    assert block <= 1e-7  # Adam's own convergence (3000 steps), not an identity
    # the transferred part P_A(W − W∞)P_X vanishes; what differs lives outside row(A) ⊗ span(X)
    assert np.linalg.norm(PA @ (W - W_inf) @ PX) <= 1e-7 * scale
    m, d, n, N = shape
    if m >= d and N >= n:  # solution set is the single point W_T: every optimiser lands on it
        assert dist <= 1e-6
    else:  # honest: Adam does not reach the GD point
        assert dist > 1e-3


def test_fresh_noise_expected_iterate_and_population_stability():
    rng = np.random.default_rng(4)
    m, d, n = 3, 5, 6
    A, W0, WT = rng.standard_normal((m, d)), rng.standard_normal((d, n)), rng.standard_normal((d, n))
    Sigma = theory.noise_second_moment("uniform", n)
    lim = theory.gd_stability_limit(A, Sigma=Sigma)
    assert lim == pytest.approx(3 * m / np.linalg.norm(A, 2) ** 2, rel=1e-12)
    # deterministic recursion with M = Σ and c = 1/m
    lr, W = 0.7 * lim, W0.copy()
    traj = theory.gd_trajectory(W0, WT, A, None, lr, 40, Sigma=Sigma)
    for k in range(40):
        W = W - lr * (2.0 / m) * A.T @ A @ (W - WT) @ Sigma
        assert np.max(np.abs(W - traj[k + 1])) <= 1e-9 * max(1.0, np.abs(W).max())
    # population fixed point: P_X = I (Σ full rank)
    assert np.allclose(traj[-1], theory.fixed_point(W0, WT, A), atol=1e-6 * np.abs(W0 - WT).max() * 1e3)


def test_logit_error_split_and_exact_transfer_shapes():
    rng = np.random.default_rng(6)
    for m, d, n, N in SHAPES:
        A, W0, WT, X = problem(rng, m, d, n, N, conditioned=False)
        C = rng.standard_normal((4, d))
        x = rng.standard_normal((n, 9))
        a, b = theory.logit_error_split(C, W0, WT, A, X, x)
        total = C @ (theory.fixed_point(W0, WT, A, X) - WT) @ x
        assert a.shape == b.shape == (4, 9)
        assert np.max(np.abs(a + b - total)) <= 1e-9 * max(1.0, np.abs(total).max())
        cond = theory.exact_transfer_condition(C, A, X, W0=W0, WT=WT)
        exact = m >= d and N >= n
        assert cond["exact_for_all_inits"] == exact
        if exact:
            assert np.max(np.abs(total)) <= 1e-9 * np.abs(C @ (W0 - WT) @ x).max()


def test_oracle_features_batch_layout():
    rng = np.random.default_rng(7)
    A = rng.standard_normal((3, 8))
    h0, hT = rng.standard_normal((16, 8)), rng.standard_normal((16, 8))
    o = theory.oracle_student_features(h0, hT, A)
    P = theory.projector(A)
    assert o.shape == (16, 8)
    assert np.max(np.abs(o - (h0 @ (np.eye(8) - P) + hT @ P))) <= 1e-12
    assert np.max(np.abs(theory.oracle_student_features(h0[0], hT[0], A) - o[0])) <= 1e-12


def test_transfer_time_formula_for_protocol_noise():
    """t_f = 3m ln(1/(1−f)) / (2σ_min(A)²) for fresh U[−1,1] noise (c = 1/m, Σ = I/3)."""
    rng = np.random.default_rng(8)
    m, d, n = 4, 10, 12
    A = rng.uniform(-1 / np.sqrt(d), 1 / np.sqrt(d), (m, d))
    t = theory.transfer_time(A, None, 0.9, Sigma=theory.noise_second_moment("uniform", n))
    smin = np.linalg.svd(A, compute_uv=False)[-1]
    assert t == pytest.approx(3 * m * np.log(10) / (2 * smin**2), rel=1e-12)
