"""The parameter-space linear response (theory.response): closed forms against simulation, exact expectations by
enumeration, the Kronecker form against the dense one, the envelope and the margin certificate."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.linalg import block_diag

from limen import theory
from limen.theory import response as R


def _instance(rng, P, rank):
    J = rng.standard_normal((rank, P)) * np.exp(rng.uniform(-2, 0, rank))[:, None]
    return J, J.T @ J, np.exp(rng.uniform(-1, 1, P)), rng.standard_normal(P)


def _lr(G, D, frac):
    lam = np.linalg.eigvalsh(np.sqrt(D)[:, None] * G * np.sqrt(D)[None, :])
    return frac / lam.max()


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.integers(3, 12), st.integers(1, 12), st.sampled_from([0.0, 0.5, 0.9]),
       st.booleans(), st.integers(0, 80))
def test_closed_form_equals_simulation(seed, P, rank, beta1, schedule, steps):
    rng = np.random.default_rng(seed)
    J, G, D, target = _instance(rng, P, min(rank, P))
    lr = _lr(G, D, 0.1)
    closed = theory.response_displacement(G, D, target, steps, lr, beta1, schedule=schedule)
    sim = theory.simulate_response(G, D, target, steps, lr, beta1, schedule=schedule)
    assert np.abs(closed - sim).max() <= 1e-9 * max(1.0, np.abs(sim).max())
    b = J.T @ rng.standard_normal(J.shape[0])
    closed_f = theory.response_displacement(G, D, steps=steps, lr=lr, beta1=beta1, gradient=b, schedule=schedule)
    sim_f = theory.simulate_response(G, D, np.zeros(P), steps, lr, beta1, schedule=schedule, grads=lambda t, d: G @ d + b)
    assert np.abs(closed_f - sim_f).max() <= 1e-9 * max(1.0, np.abs(sim_f).max())


def test_reachable_displacement_is_the_unit_response_filter():
    rng = np.random.default_rng(3)
    lam = np.exp(rng.uniform(-4, 0, 40))
    c = rng.standard_normal(40)
    w, _, etas = theory.mode_response(lam, -lam * c, 60, 0.3, schedule=True, path=True)
    u = theory.unit_response(lam, etas)
    assert np.allclose(w, (1 - u) * c, atol=1e-12)
    assert theory.mode_response(lam, -lam * c, 0, 0.3).tolist() == [0.0] * 40  # no steps: no move


def test_function_target_is_reachable_target_minus_pinv_b():
    rng = np.random.default_rng(4)
    J, G, D, _ = _instance(rng, 9, 5)
    b = J.T @ rng.standard_normal(5)
    lr = _lr(G, D, 0.2)
    a = theory.response_displacement(G, D, steps=40, lr=lr, gradient=b)
    c = theory.response_displacement(G, D, theory.function_target(G, b), 40, lr)
    assert np.allclose(a, c, atol=1e-10)


def test_plain_descent_limit_and_reachable_share():
    rng = np.random.default_rng(5)
    for rank, P in ((3, 8), (8, 8), (11, 8)):
        J = rng.standard_normal((rank, P))
        G, D, t = J.T @ J, np.exp(rng.uniform(-1, 1, P)), rng.standard_normal(P)
        lr = _lr(G, D, 0.9)
        sim = theory.simulate_response(G, D, t, 4000, lr, 0.0, schedule=False)
        assert np.allclose(sim, theory.reachable_limit(G, D, t), atol=1e-8)
        share = theory.reachable_share(G, D, t)
        assert (share == pytest.approx(1.0)) if rank >= P else (0.0 < share < 1.0)


@pytest.mark.parametrize("schedule", [False, True])
def test_envelope_bounds_the_simulated_displacement(schedule):
    rng = np.random.default_rng(6)
    for rank in (2, 5, 9):
        _, G, D, t = _instance(rng, 10, rank)
        lr = _lr(G, D, 0.4)
        d = theory.simulate_response(G, D, t, 200, lr, 0.9, schedule=schedule)
        assert np.linalg.norm(d / np.sqrt(D)) <= theory.envelope_bound(G, D, t, 200, lr, 0.9, schedule=schedule) * (1 + 1e-12)


def test_batch_second_moment_exact_by_enumeration():
    rng = np.random.default_rng(7)
    pool = rng.standard_normal((4, 3))
    for B in (1, 2, 3):
        tuples = list(itertools.product(range(4), repeat=B))
        exact = np.mean([pool[list(ix)].mean(0) ** 2 for ix in tuples], axis=0)
        assert np.allclose(theory.batch_second_moment(pool, B), exact, atol=1e-14)


def test_stochastic_response_mean_exact_by_enumeration():
    """E over every sequence of batch draws equals the population recursion (deterministic schedule)."""
    rng = np.random.default_rng(8)
    pool = rng.standard_normal((5, 4))
    G = pool.T @ pool / 5
    D, t = np.exp(rng.uniform(-0.5, 0.5, 4)), rng.standard_normal(4)
    etas = np.array([0.05, 0.08, 0.03])
    runs = [theory.stochastic_response(lambda s: pool[[seq[s - 1]]], D, t, 3, 0.0, 0.9, etas=etas)
            for seq in itertools.product(range(5), repeat=3)]
    chol = np.linalg.cholesky(G).T
    mean_path = theory.stochastic_response(lambda s: chol, D, t, 3, 0.0, 0.9, etas=etas)
    assert np.allclose(np.mean(runs, axis=0), mean_path, atol=1e-13)


def test_gridded_mode_response_close_to_exact():
    rng = np.random.default_rng(9)
    lam = np.concatenate([np.zeros(20), np.exp(rng.uniform(-15, 0, 20000))])
    for f in (-lam * rng.standard_normal(lam.size), rng.standard_normal(lam.size)):
        exact = theory.mode_response(lam, f, 300, 1e-3, schedule=True)
        gridded = theory.mode_response(lam, f, 300, 1e-3, schedule=True, grid=2048)
        assert np.abs(gridded - exact).max() <= 1e-4 * np.abs(exact).max()
    with pytest.raises(ValueError, match="grid and path"):
        theory.mode_response(lam[:5], lam[:5], 3, 1e-3, grid=16, path=True)


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 10_000), st.booleans())
def test_kronecker_form_equals_dense(seed, gradient):
    rng = np.random.default_rng(seed)
    layers, blocks, Ds, vec = [], [], [], []
    for o, i in ((2, 3), (3, 2)):
        Ja, Js = rng.standard_normal((o, o)), rng.standard_normal((i, i))
        A, S = Ja @ Ja.T, Js @ Js.T
        p, q = np.exp(rng.uniform(-1, 1, o)), np.exp(rng.uniform(-1, 1, i))
        t = rng.standard_normal((o, i))
        layers.append({"A": A, "S": S, "p": p, "q": q, ("gradient" if gradient else "target"): t})
        blocks.append(np.kron(A, S))
        Ds.append(1 / np.outer(p, q).ravel())
        vec.append(t.ravel())
    G = block_diag(*blocks)
    D = np.concatenate(Ds)
    lr = _lr(G, D, 0.3)
    got = np.concatenate([w.ravel() for w in theory.kronecker_response(layers, 50, lr)])
    kw = {"gradient": np.concatenate(vec)} if gradient else {"target": np.concatenate(vec)}
    want = theory.response_displacement(G, D, steps=50, lr=lr, **kw)
    assert np.abs(got - want).max() <= 1e-9 * max(1.0, np.abs(want).max())


def test_kronecker_diagonal_recovers_an_outer_product_and_floors_zeros():
    p0, q0 = np.array([1.0, 3.0, 0.5]), np.array([2.0, 0.1])
    p, q = theory.kronecker_diagonal(np.outer(p0, q0))
    assert np.allclose(np.outer(p, q), np.outer(p0, q0))
    p, q = theory.kronecker_diagonal(np.zeros((2, 2)))
    assert np.all(p > 0) and np.all(q > 0)


def test_first_order_share_and_remainder():
    a = np.arange(6.0)
    assert theory.first_order_share(a, a) == pytest.approx(1.0)
    assert theory.remainder_ratio(a, a) == pytest.approx(0.0)
    assert theory.first_order_share(0.5 * a, a) == pytest.approx(0.5)
    assert np.isnan(theory.first_order_share(a, np.zeros(6)))


def test_margin_certificate_holds_for_every_admissible_student():
    rng = np.random.default_rng(10)
    yP = 3 * rng.standard_normal((300, 5))
    labels = rng.integers(0, 5, 300)
    scale = np.abs(rng.standard_normal(300))
    k = 0.4
    cert = theory.relative_margin_certificate(yP, scale, labels, k)
    for _ in range(20):  # random students inside the band never fall below the guarantee
        yS = yP + k * scale[:, None] * rng.uniform(-1, 1, yP.shape)
        assert np.mean(yS.argmax(1) == labels) >= cert["accuracy_lower_bound"]
    assert theory.relative_margin_certificate(yP, scale, labels, 0.0)["accuracy_lower_bound"] == pytest.approx(
        np.mean((yP.argmax(1) == labels) & (np.sort(yP, 1)[:, -1] > np.sort(yP, 1)[:, -2])))


def test_segment_certificate_holds_along_the_whole_predicted_change():
    rng = np.random.default_rng(11)
    y0 = rng.standard_normal((300, 5))
    yP = y0 + 3 * rng.standard_normal((300, 5))
    labels = rng.integers(0, 5, 300)
    a_min, k = 0.3, 0.05
    cert = theory.segment_margin_certificate(y0, yP, labels, a_min, k)
    s = np.abs(yP - y0).max(1)
    for _ in range(20):  # random students inside the tube around the segment never fall below the guarantee
        alpha = rng.uniform(a_min, 1.0, (300, 1))
        yS = y0 + alpha * (yP - y0) + k * s[:, None] * rng.uniform(-1, 1, yP.shape)
        assert np.mean(yS.argmax(1) == labels) >= cert["accuracy_lower_bound"]
    # a certified example keeps its predicted class at both ends; the bound shrinks as the size gets less certain
    c = yP.argmax(1)
    for a in (a_min, 1.0):
        assert np.all((y0 + a * (yP - y0)).argmax(1)[cert["guaranteed"]] == c[cert["guaranteed"]])
    looser = theory.segment_margin_certificate(y0, yP, labels, 0.0, k)["accuracy_lower_bound"]
    one = theory.segment_margin_certificate(y0, yP, labels, 1.0, k)["accuracy_lower_bound"]
    assert looser <= cert["accuracy_lower_bound"] <= one
    assert one == theory.relative_margin_certificate(yP, s, labels, k)["accuracy_lower_bound"]


@pytest.mark.parametrize("call, match", [
    (lambda: theory.mode_response([1.0, 2.0], [1.0], 3, 0.1), "forcing"),
    (lambda: theory.mode_response([1.0], [1.0], -1, 0.1), "steps"),
    (lambda: theory.mode_response([1.0], [1.0], 3, 0.1, beta1=1.0), "beta1"),
    (lambda: theory.response_displacement(np.eye(2), np.ones(2), steps=1, lr=0.1), "exactly one"),
    (lambda: theory.response_displacement(np.eye(2), -np.ones(2), np.ones(2), 1, 0.1), "positive"),
    (lambda: theory.relative_margin_certificate(np.zeros((3, 2)), np.ones(2), [0, 1, 0], 0.1), "scale"),
    (lambda: theory.relative_margin_certificate(np.zeros((3, 2)), np.ones(3), [0, 1, 0], float("nan")), "k must"),
    (lambda: theory.segment_margin_certificate(np.zeros((3, 2)), np.zeros((3, 3)), [0, 1, 0], 0.2, 0.1), "same shape"),
    (lambda: theory.segment_margin_certificate(np.zeros((3, 2)), np.zeros((3, 2)), [0, 1], 0.2, 0.1), "labels"),
    (lambda: theory.segment_margin_certificate(np.zeros((3, 2)), np.zeros((3, 2)), [0, 1, 0], 1.5, 0.1), "alpha_min"),
    (lambda: theory.segment_margin_certificate(np.zeros((3, 2)), np.zeros((3, 2)), [0, 1, 0], 0.2, -1.0), "k must"),
])
def test_bad_input_names_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_registered_results_cover_issue_items():
    names = set(theory.list_results())
    assert {"preconditioned-response", "parameter-space-exact-transfer", "response-envelope",
            "stochastic-response-mean", "kronecker-response", "response-margin-certificate", "segment-margin-certificate",
            "cross-head-target"} <= names
    assert R.BETA1 == 0.9 and R.BETA2 == 0.999  # torch.optim.Adam's defaults, which the engine uses


def test_cross_head_target_is_the_least_squares_body_move():
    rng = np.random.default_rng(11)
    J, A_T = rng.standard_normal((40, 5, 8)), rng.standard_normal((3, 5))
    dw = rng.standard_normal(8)
    for A_S, expect in ((A_T, "projection"), (A_T + 1e-3 * rng.standard_normal((3, 5)), "near"),
                        (rng.standard_normal((3, 5)), "other")):
        G = lambda a, b: np.einsum("xdp,md,me,xeq->pq", J, a, b, J) / 40  # noqa: E731
        got = theory.cross_head_target(G(A_S, A_S), G(A_S, A_T), dw)
        lhs = np.einsum("md,xdp->xmp", A_S, J).reshape(-1, 8)
        assert np.allclose(got, np.linalg.lstsq(lhs, np.einsum("md,xdp,p->xm", A_T, J, dw).reshape(-1), rcond=None)[0])
        if expect == "projection":   # 120 rows ≥ 8 parameters: the teacher's change itself
            assert np.allclose(got, dw)
        if expect == "near":
            assert np.allclose(got, dw, atol=1e-2)
    S = (lambda X: X @ X.T + np.eye(4))(rng.standard_normal((4, 4)))
    A_SS, A_ST = (lambda X: X @ X.T + np.eye(3))(rng.standard_normal((3, 3))), rng.standard_normal((3, 3))
    dW = rng.standard_normal((3, 4))
    dense = theory.cross_head_target(np.kron(A_SS, S), np.kron(A_ST, S), dW.ravel())
    assert np.allclose(theory.kronecker_cross_target(A_SS, A_ST, dW).ravel(), dense, atol=1e-10)
