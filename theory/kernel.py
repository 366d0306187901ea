"""Kernel (NTK) form of split-head distillation for arbitrary bodies (theory R5).

Body ``φ(x; w) ∈ R^d`` (an MLP, a CNN, ±layers), heads ``[C; A]`` on top, both frozen
during distillation. Linearise the body around the student's initial parameters ``w0``:
``φ(x; w) ≈ φ(x; w0) + J(x)(w − w0)`` with ``J(x) = ∂φ/∂w`` (d × p). With the aux loss
``L = c Σ_b ‖A φ(x_b) + a − z_T(x_b)‖²`` (``c = 1/(N m)`` for mean reduction) gradient
descent in parameter space gives, for the class logits on any input ``x``,

    y_{k+1}(x) = y_k(x) − 2 c η Σ_b C K(x, x_b) Aᵀ r_k(x_b),     K(x, x') = J(x) J(x')ᵀ (d × d)
    r_{k+1}    = (I − 2 c η Θ_aa) r_k,                           Θ_aa = [A K(x_b, x_b') Aᵀ]_{b b'}

so the **class/aux cross-kernel** ``Θ_ca(x, x') = C K(x, x') Aᵀ`` is what carries the aux
signal into the class logits. The limit is kernel regression:
``y_∞(x) = y_0(x) − Θ_ca(x, X) Θ_aa⁺ r_0``. For ``K(x, x') = κ(x, x') I_d`` it becomes
``y_0(x) − C A⁺ R_0 κ(X, X)⁺ κ(X, x)`` -- only ``C P_A`` matters, as in the linear model
(``κ = xᵀx'``: exactly :func:`~limen.theory.linear.fixed_point`).

Arrays: kernel blocks are 4-D, ``K[i, j]`` = ``K(x_i, x_j)`` of shape ``(d, d)``; residuals
``r0`` are ``(N, m)``; logits ``(T, K)``.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .linear import _arr, fixed_point, pinv
from .results import Result, eq, register, report


def cross_kernel(C, K, A) -> np.ndarray:
    """``Θ_ca = C K Aᵀ`` for one block ``K`` (d, d) or a stack (..., d, d); shape (..., K_classes, m)."""
    C, A, K = _arr(C, "C", 2), _arr(A, "A", 2), _arr(K, "K")
    return np.einsum("kd,...de,me->...km", C, K, A)


def kernel_blocks(J_a, J_b) -> np.ndarray:
    """``K(x_i, x_j) = J(x_i) J(x_j)ᵀ`` from Jacobians ``J_a`` (Na, d, p), ``J_b`` (Nb, d, p) → (Na, Nb, d, d)."""
    return np.einsum("idp,jep->ijde", _arr(J_a, "J_a", 3), _arr(J_b, "J_b", 3))


def linear_body_kernel(x_a, x_b, d: int) -> np.ndarray:
    """Kernel of the linear body ``φ = W x``: ``K(x, x') = (xᵀx') I_d``; inputs as columns (n, Na), (n, Nb)."""
    G = _arr(x_a, "x_a", 2).T @ _arr(x_b, "x_b", 2)
    return G[:, :, None, None] * np.eye(d)


def _thetas(C, A, K_test_train, K_train_train):
    C, A = _arr(C, "C", 2), _arr(A, "A", 2)
    Ktt, Kxx = _arr(K_test_train, "K_test_train", 4), _arr(K_train_train, "K_train_train", 4)
    N, m = Kxx.shape[0], A.shape[0]
    taa = np.einsum("md,bcde,ne->bmcn", A, Kxx, A).reshape(N * m, N * m)
    tca = np.einsum("kd,tbde,me->tkbm", C, Ktt, A).reshape(Ktt.shape[0], C.shape[0], N * m)
    return tca, (taa + taa.T) / 2


def ntk_fixed_point_logits(C, A, K_test_train, K_train_train, r0, y0=None) -> np.ndarray:
    """Limit of the linearised dynamics: ``y_∞(x) = y_0(x) − Θ_ca(x, X) Θ_aa⁺ vec(r_0)``, shape (T, K).

    ``r0`` (N, m): initial aux residuals ``z_S(x_b) − z_T(x_b)`` on the training noise.
    ``y0`` (T, K): initial class logits on the test inputs (0 if omitted: the change only).
    Independent of the learning rate and the loss scale.
    """
    tca, taa = _thetas(C, A, K_test_train, K_train_train)
    delta = -np.einsum("tkj,j->tk", tca, pinv(taa) @ _arr(r0, "r0", 2).reshape(-1))
    return delta if y0 is None else _arr(y0, "y0", 2) + delta


def ntk_trajectory(C, A, K_test_train, K_train_train, r0, lr: float, steps: int, y0=None, *,
                   reduction="mean") -> np.ndarray:
    """Class logits ``y_k(x)`` of GD on the linearised model, k = 0..steps, shape (steps+1, T, K).

    Closed form: ``y_k = y_0 − a Θ_ca Σ_{j<k} (I − aΘ_aa)^j r_0`` with ``a = 2 c η``, summed in the
    eigenbasis of Θ_aa. ``reduction="mean"``: ``c = 1/(N m)``; a float is used as ``c``.
    """
    tca, taa = _thetas(C, A, K_test_train, K_train_train)
    N, m = _arr(r0, "r0", 2).shape
    c = 1.0 / (N * m) if reduction == "mean" else float(reduction)
    a = 2.0 * c * lr
    th, V = np.linalg.eigh(taa)
    th = np.where(th > th.max() * th.size * np.finfo(float).eps, th, 0.0)
    q0 = V.T @ _arr(r0, "r0", 2).reshape(-1)
    k = np.arange(steps + 1, dtype=float)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        geo = np.where(th > 0, (1.0 - (1.0 - a * th) ** k) / (a * th), k)  # Σ_{j<k} (1 − aθ)^j
    cum = (geo * q0) @ V.T  # (steps+1, N m)
    delta = -a * np.einsum("tkj,sj->stk", tca, cum)
    return delta if y0 is None else _arr(y0, "y0", 2)[None] + delta


# --------------------------------------------------------------------------- a small ReLU body for checks
def relu_body(params, x):
    """φ(x) = V relu(U x) for params (U (h, n), V (d, h)); x (n, B) → (B, d)."""
    U, V = params
    return (V @ np.maximum(U @ x, 0.0)).T


def relu_body_jacobian(params, x) -> np.ndarray:
    """∂φ/∂w for φ = V relu(U x), w = (vec_rowmajor(U), vec_rowmajor(V)); returns (B, d, p)."""
    U, V = params
    h, n = U.shape
    d = V.shape[0]
    pre = U @ x  # (h, B)
    act, der = np.maximum(pre, 0.0), (pre > 0).astype(float)
    B = x.shape[1]
    # dφ_i/dU_{jl} = V_ij der_j x_l ; dφ_i/dV_{ij'} = δ_{i i'} act_j'
    JU = np.einsum("ij,jb,lb->bijl", V, der, x).reshape(B, d, h * n)
    JV = np.einsum("ik,jb->bikj", np.eye(d), act).reshape(B, d, d * h)
    return np.concatenate([JU, JV], axis=2)


def _flat(params):
    return np.concatenate([p.reshape(-1) for p in params])


# --------------------------------------------------------------------------- symbolic side
@lru_cache(maxsize=None)
def _S():
    import sympy as sp

    d, m, K, p, N = sp.symbols("d m K p N", positive=True, integer=True)
    M = sp.MatrixSymbol
    return dict(sp=sp, d=d, m=m, K=K, p=p, N=N, c=sp.Symbol("c", positive=True),
                C=M("C", K, d), A=M("A", m, d), J=M("J(x)", d, p), Jb=M("J(x_b)", d, p),
                Jc=M("J(x_{b'})", d, p), r=M("r_b", m, 1), w=M("w", p, 1))


@lru_cache(maxsize=None)
def _linear_kernel_symbolic():
    """K(x, x') for φ = W x with W 2×3, by sympy Jacobians: should be (xᵀx') I_2."""
    import sympy as sp

    W = sp.Matrix(2, 3, sp.symbols("w1:7"))
    x, y = sp.Matrix(sp.symbols("x1:4")), sp.Matrix(sp.symbols("y1:4"))
    wv = sp.Matrix(list(W))
    Jx, Jy = (W * x).jacobian(wv), (W * y).jacobian(wv)
    return (Jx * Jy.T - (x.T * y)[0] * sp.eye(2)).applyfunc(sp.expand)


def _ntk_build():
    S = _S()
    sp = S["sp"]
    C, A, J, Jb, r, c = S["C"], S["A"], S["J"], S["Jb"], S["r"], S["c"]
    Kx = sp.MatrixSymbol("K(x,x_b)", S["d"], S["d"])
    dy = r"\dot y(x)"
    theta_ca = sp.MatrixSymbol(r"\Theta_{ca}(x,X)", S["K"], S["N"] * S["m"])
    theta_aa = sp.MatrixSymbol(r"\Theta_{aa}^{+}", S["N"] * S["m"], S["N"] * S["m"])
    r0 = sp.MatrixSymbol("r_0", S["N"] * S["m"], 1)
    lim = eq(r"y_{\infty}(x) - y_{0}(x)", -theta_ca * theta_aa * r0)
    zero = _linear_kernel_symbolic()
    steps = [
        ("Parameter flow on L = c Σ_b ‖A φ(x_b) + a − z_T(x_b)‖² (one term of the sum over noise samples b shown)",
         eq(r"\dot w", -2 * c * Jb.T * A.T * r)),
        ("Class logits move by C J(x) ẇ: the cross-kernel C K(x, x_b) Aᵀ with K = J(x) J(x_b)ᵀ",
         eq(dy, -2 * c * C * J * Jb.T * A.T * r)),
        ("", eq(dy, -2 * c * C * Kx * A.T * r)),
        ("Aux residuals on the noise: ṙ = −2c Θ_aa r (Θ_aa = [A K(x_b, x_b') Aᵀ] ⪰ 0); integrate, using "
         "Θ_ca Θ_aa⁺ Θ_aa = Θ_ca (range(Θ_caᵀ) ⊆ range(Θ_aa) since both factor through J_Xᵀ(I⊗Aᵀ))", lim),
        ("K = κ(x,x') I_d: Θ_aa = κ(X,X) ⊗ AAᵀ, Θ_ca = κ(x,X) ⊗ CAᵀ, so y_∞ − y_0 = −C A⁺ R_0 κ(X,X)⁺ κ(X,x): "
         "only C P_A enters (R1)", None),
        ("Linear body φ = Wx: sympy Jacobians give J(x)J(y)ᵀ − (xᵀy) I (2×3 case) =", zero),
        ("…so κ = xᵀx' and the limit is C(W∞ − W0)x with W∞ = W0 + P_A(W_T − W0)P_X (fixed-point)", None),
    ]
    return lim, steps


def _setup(rng, n=4, h=24, d=5, m=3, Kc=4, N=4, T=5):
    U0, V0 = rng.standard_normal((h, n)) / np.sqrt(n), rng.standard_normal((d, h)) / np.sqrt(h)
    X, Xt = rng.uniform(-1, 1, (n, N)), rng.standard_normal((n, T))
    A, C = rng.standard_normal((m, d)), rng.standard_normal((Kc, d))
    zT = rng.standard_normal((N, m))
    return (U0, V0), X, Xt, A, C, zT


def _ntk_check(rng):
    errs = {}
    for m in (2, 5, 8):
        params, X, Xt, A, C, zT = _setup(rng, m=m)
        Jx, Jt = relu_body_jacobian(params, X), relu_body_jacobian(params, Xt)
        r0 = relu_body(params, X) @ A.T - zT
        y0 = relu_body(params, Xt) @ C.T
        pred = ntk_fixed_point_logits(C, A, kernel_blocks(Jt, Jx), kernel_blocks(Jx, Jx), r0, y0)
        # parameter space: min-norm least-squares step of the linearised model (the GD limit from w0)
        G = np.einsum("md,bdp->bmp", A, Jx).reshape(-1, Jx.shape[2])
        dw = -pinv(G) @ r0.reshape(-1)
        ref = y0 + np.einsum("kd,tdp,p->tk", C, Jt, dw)
        # relative: the kernel route squares the condition number of the stacked Jacobian
        errs[f"kernel limit = parameter-space limit m={m}"] = float(np.abs(pred - ref).max() / np.abs(ref).max())
    # linear body: the kernel limit is the linear model's fixed point
    for m, d, n, N in [(2, 5, 4, 3), (6, 5, 4, 6), (3, 4, 6, 9)]:
        A, W0, WT, X, C = (rng.standard_normal(s) for s in [(m, d), (d, n), (d, n), (n, N), (3, d)])
        Xt = rng.standard_normal((n, 4))
        r0 = (A @ (W0 - WT) @ X).T
        y = ntk_fixed_point_logits(C, A, linear_body_kernel(Xt, X, d), linear_body_kernel(X, X, d), r0, (C @ W0 @ Xt).T)
        errs[f"linear body = fixed-point m={m},d={d}"] = float(np.abs(y - (C @ fixed_point(W0, WT, A, X) @ Xt).T).max())
    # free features: K(x_b, x_b') = δ_bb' I, test = train points → oracle features (R1.2)
    from .linear import oracle_student_features

    d, m, N = 6, 2, 5
    A, C = rng.standard_normal((m, d)), rng.standard_normal((3, d))
    h0, hT = rng.standard_normal((N, d)), rng.standard_normal((N, d))
    Kd = np.eye(N)[:, :, None, None] * np.eye(d)
    y = ntk_fixed_point_logits(C, A, Kd, Kd, (h0 - hT) @ A.T, h0 @ C.T)
    errs["δ-kernel = oracle features"] = float(np.abs(y - oracle_student_features(h0, hT, A) @ C.T).max())
    zero = _linear_kernel_symbolic()
    errs["symbolic linear kernel"] = 0.0 if zero.is_zero_matrix else np.inf
    return report("ntk-fixed-point", errs, 1e-9)


def _ntk_eval(C, A, K_test_train, K_train_train, r0, y0=None):
    return ntk_fixed_point_logits(C, A, K_test_train, K_train_train, r0, y0)


def _traj_build():
    S = _S()
    sp = S["sp"]
    a = sp.Symbol("a", positive=True)
    k = sp.Symbol("k", integer=True, nonnegative=True)
    th = sp.Symbol("theta", positive=True)
    j = sp.Symbol("j", integer=True, nonnegative=True)
    geo = sp.simplify(sp.summation((1 - a * th) ** j, (j, 0, k - 1)))
    Nm = S["N"] * S["m"]
    tca = sp.MatrixSymbol(r"\Theta_{ca}(x,X)", S["K"], Nm)
    V, G = sp.MatrixSymbol("V", Nm, Nm), sp.MatrixSymbol("G_{k}", Nm, Nm)
    res = eq(r"y_{k}(x) - y_{0}(x)", -a * tca * V * G * V.T * sp.MatrixSymbol("r_{0}", Nm, 1))
    steps = [
        ("GD on the linearised model, a = 2cη: r_{k+1} = (I − aΘ_aa) r_k and y_{k+1}(x) = y_k(x) − a Θ_ca(x,X) r_k", None),
        ("In the eigenbasis Θ_aa = V diag(θ) Vᵀ the accumulated residual is a geometric sum per eigenvalue (sympy)",
         sp.Eq(sp.Symbol(r"(G_{k})_{ii}"), sp.Sum((1 - a * th) ** j, (j, 0, k - 1)))),
        ("(sympy summation; θ = θ_i, and k itself where θ_i = 0)", sp.Eq(sp.Sum((1 - a * th) ** j, (j, 0, k - 1)), geo)),
        ("Stable iff a θ_max < 2; the class logits follow the aux residual through the cross-kernel only", res),
    ]
    return res, steps


def _traj_check(rng):
    errs = {}
    for m in (2, 5):
        params, X, Xt, A, C, zT = _setup(rng, m=m)
        Jx, Jt = relu_body_jacobian(params, X), relu_body_jacobian(params, Xt)
        phi0, phit = relu_body(params, X), relu_body(params, Xt)
        r0, y0 = phi0 @ A.T - zT, phit @ C.T
        N = X.shape[1]
        c = 1.0 / (N * m)
        Kxx = kernel_blocks(Jx, Jx)
        taa = np.einsum("md,bcde,ne->bmcn", A, Kxx, A).reshape(N * m, N * m)
        lr = 1.0 / (2 * c * np.linalg.eigvalsh(taa).max())
        steps = 60
        pred = ntk_trajectory(C, A, kernel_blocks(Jt, Jx), Kxx, r0, lr, steps, y0)
        # explicit GD in parameter space on the linearised model
        dw = np.zeros(Jx.shape[2])
        ys = [y0]
        for _ in range(steps):
            r = r0 + np.einsum("md,bdp,p->bm", A, Jx, dw)
            dw = dw - lr * 2 * c * np.einsum("bdp,md,bm->p", Jx, A, r)
            ys.append(y0 + np.einsum("kd,tdp,p->tk", C, Jt, dw))
        errs[f"every step m={m}"] = float(np.abs(np.stack(ys) - pred).max())
    return report("ntk-trajectory", errs, 1e-9)


def _traj_eval(C, A, K_test_train, K_train_train, r0, lr, steps, y0=None, reduction="mean"):
    return ntk_trajectory(C, A, K_test_train, K_train_train, r0, lr, int(steps), y0, reduction=reduction)


def first_step_alignment(A, J_noise, dw_T, *, c: float = 1.0, lr: float = 1.0) -> dict:
    """Shared initialisation, teacher moved by ``dw_T``: the student's first GD step and its alignment.

    Student starts at the teacher's initial parameters; to first order its aux residuals are
    ``r_b = −A J_b dw_T``, so ``dw_S = 2 c lr Σ_b J_bᵀ AᵀA J_b dw_T`` and
    ``⟨dw_S, dw_T⟩ = 2 c lr Σ_b ‖A J_b dw_T‖² ≥ 0`` (Cloud et al.'s alignment, in head form).
    ``J_noise``: (N, d, p).
    """
    A, Jn, dw = _arr(A, "A", 2), _arr(J_noise, "J_noise", 3), _arr(dw_T, "dw_T", 1)
    AJ = np.einsum("md,bdp->bmp", A, Jn)
    dwS = 2 * c * lr * np.einsum("bmp,bmq,q->p", AJ, AJ, dw)
    return {"dw_S": dwS, "inner": float(dwS @ dw), "inner_formula": float(2 * c * lr * np.sum(np.einsum("bmp,p->bm", AJ, dw) ** 2))}


def _align_build():
    S = _S()
    sp = S["sp"]
    A, Jb, c = S["A"], S["Jb"], S["c"]
    dwT = sp.MatrixSymbol(r"\delta w_T", S["p"], 1)
    eta = sp.Symbol("eta", positive=True)
    dwS = 2 * c * eta * Jb.T * A.T * A * Jb * dwT
    res = sp.Eq(sp.Symbol(r"\langle \delta w_{S}, \delta w_{T} \rangle"),
                2 * c * eta * sp.Symbol(r"\sum_{b} \|A J(x_{b})\,\delta w_{T}\|^{2}"))
    steps = [
        ("Shared initialisation w_S = w0, teacher w_T = w0 + δw_T; to first order r_b = −A J(x_b) δw_T", None),
        ("Student's first step (one noise term shown)", eq(r"\delta w_S", dwS)),
        ("Its alignment with the teacher's update is a sum of squares, ≥ 0 for any noise and any teacher loss", res),
    ]
    return res, steps


def _align_check(rng):
    errs = {}
    for m in (1, 3, 9):
        params, X, _, A, _, _ = _setup(rng, m=m)
        Jx = relu_body_jacobian(params, X)
        dw = rng.standard_normal(Jx.shape[2])
        r = first_step_alignment(A, Jx, dw, c=0.3, lr=0.7)
        errs[f"inner = sum of squares m={m}"] = abs(r["inner"] - r["inner_formula"]) / max(1.0, abs(r["inner"]))
        errs[f"inner ≥ 0 m={m}"] = max(0.0, -r["inner"])
        # it is the true first GD step of the linearised student (finite-difference free: exact linear algebra)
        G = np.einsum("md,bdp->bmp", A, Jx)
        r0 = -np.einsum("bmp,p->bm", G, dw)
        step = -0.7 * 2 * 0.3 * np.einsum("bmp,bm->p", G, r0)
        errs[f"= GD step m={m}"] = float(np.abs(step - r["dw_S"]).max())
    return report("first-step-alignment", errs, 1e-9)


def _align_eval(A, J_noise, dw_T, c=1.0, lr=1.0):
    return first_step_alignment(A, J_noise, dw_T, c=c, lr=lr)


_NTK = ("Body linearised around the student's initial parameters (lazy/NTK regime): φ(x; w) ≈ φ(x; w0) + J(x)(w − w0)",
        "Heads C, A frozen during distillation; plain gradient descent (or flow) on the aux MSE over a fixed noise set",)

register(Result("ntk-fixed-point", "kernel form: y_∞(x) = y_0(x) − Θ_ca(x,X) Θ_aa⁺ r_0 with the cross-kernel Θ_ca = C K_φ Aᵀ (R5)",
                _NTK, "Transfer to digits is governed by C K_φ(x, x_noise) Aᵀ: the body enters only through how its kernel "
                "links test inputs to noise; K_φ ∝ I recovers R1 (m/d), the linear body recovers the linear fixed point.",
                True, _ntk_build, _ntk_eval, _ntk_check, section="kernel",
                approximation="exact for the linearised body; a finite-width ReLU network trained with Adam leaves the lazy "
                "regime (its kernel moves) and Adam preconditions the step, so the prediction is first order"))
register(Result("ntk-trajectory", "kernel dynamics: class logits of GD on the linearised body, step by step",
                _NTK, "How fast class logits change per step is set by the eigenvalues of Θ_aa on the noise and by Θ_ca.",
                True, _traj_build, _traj_eval, _traj_check, section="kernel",
                approximation="exact for the linearised body under plain GD; approximate for trained networks"))
register(Result("first-step-alignment", "shared initialisation: ⟨δw_S, δw_T⟩ = 2cη Σ_b ‖A J_b δw_T‖² ≥ 0",
                _NTK[:1] + ("Student starts at the teacher's initial parameters; teacher displaced by δw_T (any loss)",),
                "With a shared body the first distillation step never points against the teacher's update, for any noise "
                "(Cloud et al.'s theorem restricted to the aux head).", True, _align_build, _align_eval, _align_check,
                section="kernel"))
