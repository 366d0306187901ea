"""Head compatibility: definitions and the class-logit error decomposition (theory R1.1, R1.4, R1.5).

Free-feature model: the student's features on one input are a free vector ``h ∈ R^d``
moved by gradient flow on the aux loss ``‖A_S h + a_S − (A_T h_T + a_T)‖²`` from ``h_S⁰``,
with both heads frozen. Its limit is the minimum-norm least-squares point (R1.1)

    h_S^∞ = h_S⁰ + A_S⁺ (A_T h_T + a_T − a_S − A_S h_S⁰)
          = (I − P_S) h_S⁰ + A_S⁺ A_T h_T + A_S⁺ (a_T − a_S),      P_S = A_S⁺ A_S.

This is the linear model of :mod:`.linear` with ``n_in = N = 1`` (the input is the constant
1 and ``W`` is the feature vector), and the ``K_φ ∝ I`` case of :mod:`.kernel`.

Definitions (this library's; the teacher's projector ``P_{A_T}`` in place of ``P_{A_S}`` coincides
when ``A_S = A_T`` but does not make the feature error contract otherwise; docs/theory.md §9):

* **aux-compatible**: ``A_Sᵀ (A_T − A_S) = 0`` and ``A_Sᵀ (a_T − a_S) = 0``;
  equivalently ``A_S⁺ A_T = P_S`` and ``A_S⁺ (a_T − a_S) = 0`` (ker A_S⁺ = ker A_Sᵀ);
  equivalently, for every ``h_S⁰, h_T``: ``h_S^∞ − h_T = (I − P_S)(h_S⁰ − h_T)``.
  ``A_S = A_T`` is the main case; ``A_T − A_S`` with columns orthogonal to range(A_S)
  (possible only for m > d) is also compatible.
* **class-compatible**: ``(C_S − C_T) P_S = 0`` and ``c_S = c_T``: the two class heads read
  the transferred subspace row(A_S) identically. **Strictly** class-compatible: ``C_S = C_T``.

Decomposition, for arbitrary heads (all terms in class-logit space, summing exactly to
``y_S^∞ − y_T``):

    untransferred        C_S (I − P_S)(h_S⁰ − h_T)
    aux_incompatibility  C_S [(A_S⁺A_T − P_S) h_T + A_S⁺ (a_T − a_S)]
    class_in_row_A       (C_S − C_T) P_S h_T
    class_outside_row_A  (C_S − C_T)(I − P_S) h_T
    class_bias           c_S − c_T
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .linear import _arr, _vec, fixed_point, pinv, projector
from .results import Result, eq, register, report


def aux_compatibility_residual(A_S, A_T, a_S=None, a_T=None) -> float:
    """``(‖A_Sᵀ(A_T − A_S)‖_F + ‖A_Sᵀ(a_T − a_S)‖) / ‖A_S‖_2²`` (0 iff aux-compatible)."""
    A_S, A_T = _arr(A_S, "A_S", 2), _arr(A_T, "A_T", 2)
    m = A_S.shape[0]
    s = np.linalg.norm(A_S, 2) ** 2
    if s == 0:
        return 0.0
    da = _vec(a_T, m, "a_T") - _vec(a_S, m, "a_S")
    return float((np.linalg.norm(A_S.T @ (A_T - A_S)) + np.linalg.norm(A_S.T @ da)) / s)


def is_aux_compatible(A_S, A_T, a_S=None, a_T=None, tol: float = 1e-9) -> bool:
    """Aux-compatible heads (see the module docstring); ``tol`` is relative to ‖A_S‖²."""
    return aux_compatibility_residual(A_S, A_T, a_S, a_T) <= tol


def class_compatibility_residual(C_S, C_T, A_S, c_S=None, c_T=None) -> float:
    """``(‖(C_S − C_T) P_S‖_F + ‖c_S − c_T‖) / max(‖C_T‖_F, ‖C_S‖_F)`` (0 iff class-compatible)."""
    C_S, C_T = _arr(C_S, "C_S", 2), _arr(C_T, "C_T", 2)
    K = C_S.shape[0]
    den = max(np.linalg.norm(C_S), np.linalg.norm(C_T))
    if den == 0:
        return 0.0
    dc = _vec(c_S, K, "c_S") - _vec(c_T, K, "c_T")
    return float((np.linalg.norm((C_S - C_T) @ projector(A_S)) + np.linalg.norm(dc)) / den)


def is_class_compatible(C_S, C_T, A_S, c_S=None, c_T=None, tol: float = 1e-9) -> bool:
    """Class-compatible heads relative to the student's aux head ``A_S``."""
    return class_compatibility_residual(C_S, C_T, A_S, c_S, c_T) <= tol


def feature_fixed_point(hS0, hT, A_S, A_T=None, a_S=None, a_T=None) -> np.ndarray:
    """R1.1: ``h_S⁰ + A_S⁺ (A_T h_T + a_T − a_S − A_S h_S⁰)``; features on the last axis ((d,) or (B, d))."""
    hS0, hT, A_S = _arr(hS0, "hS0"), _arr(hT, "hT"), _arr(A_S, "A_S", 2)
    A_T = A_S if A_T is None else _arr(A_T, "A_T", 2)
    m = A_S.shape[0]
    target = hT @ A_T.T + (_vec(a_T, m, "a_T") - _vec(a_S, m, "a_S")) - hS0 @ A_S.T
    return hS0 + target @ pinv(A_S).T


def logit_error_decomposition(hS0, hT, C_S, A_S, C_T=None, A_T=None, a_S=None, a_T=None,
                              c_S=None, c_T=None) -> dict[str, np.ndarray]:
    """The five terms of ``y_S^∞ − y_T`` (module docstring) and their sum ``total``.

    Features on the last axis: ``hS0, hT`` of shape ``(d,)`` or ``(B, d)``; each term has
    shape ``(K,)`` or ``(B, K)``. ``C_T``/``A_T`` default to the student's heads, biases to 0.
    ``total`` is computed independently, as ``C_S h_S^∞ + c_S − C_T h_T − c_T``.
    """
    hS0, hT = _arr(hS0, "hS0"), _arr(hT, "hT")
    C_S, A_S = _arr(C_S, "C_S", 2), _arr(A_S, "A_S", 2)
    C_T = C_S if C_T is None else _arr(C_T, "C_T", 2)
    A_T = A_S if A_T is None else _arr(A_T, "A_T", 2)
    K, m = C_S.shape[0], A_S.shape[0]
    cS, cT = _vec(c_S, K, "c_S"), _vec(c_T, K, "c_T")
    aS, aT = _vec(a_S, m, "a_S"), _vec(a_T, m, "a_T")
    P, Ap = projector(A_S), pinv(A_S)
    dC = C_S - C_T
    out = {
        "untransferred": ((hS0 - hT) - (hS0 - hT) @ P) @ C_S.T,
        "aux_incompatibility": (hT @ (Ap @ A_T - P).T + (aT - aS) @ Ap.T) @ C_S.T,
        "class_in_row_A": (hT @ P) @ dC.T,
        "class_outside_row_A": (hT - hT @ P) @ dC.T,
        "class_bias": np.broadcast_to(cS - cT, hT.shape[:-1] + (K,)).copy(),
    }
    h_inf = feature_fixed_point(hS0, hT, A_S, A_T, aS, aT)
    out["total"] = h_inf @ C_S.T + cS - (hT @ C_T.T + cT)
    return out


# --------------------------------------------------------------------------- symbolic side
@lru_cache(maxsize=None)
def _S():
    import sympy as sp

    m, d, K = sp.symbols("m d K", positive=True, integer=True)
    M = sp.MatrixSymbol
    return dict(sp=sp, m=m, d=d, K=K, AS=M("A_S", m, d), AT=M("A_T", m, d), ASp=M("A_S^{+}", d, m),
                CS=M("C_S", K, d), CT=M("C_T", K, d), P=M("P_S", d, d), aS=M("a_S", m, 1), aT=M("a_T", m, 1),
                cS=M("c_S", K, 1), cT=M("c_T", K, 1), h0=M("h_S^0", d, 1), hT=M("h_T", d, 1),
                hinf=M(r"h_S^{\infty}", d, 1), I=sp.Identity(d))


def _def_build():
    S = _S()
    sp = S["sp"]
    AS, AT, ASp, aS, aT, CS, CT, P, cS, cT = (S[k] for k in ("AS", "AT", "ASp", "aS", "aT", "CS", "CT", "P", "cS", "cT"))
    m, d, K = S["m"], S["d"], S["K"]
    aux = sp.And(sp.Eq(AS.T * (AT - AS), sp.ZeroMatrix(d, d)), sp.Eq(AS.T * (aT - aS), sp.ZeroMatrix(d, 1)))
    cls = sp.And(sp.Eq((CS - CT) * P, sp.ZeroMatrix(K, d)), sp.Eq(cS, cT))
    steps = [
        ("Feature fixed point of gradient flow on ‖A_S h + a_S − A_T h_T − a_T‖² from h_S⁰ (min-norm least squares, R1.1)",
         sp.Eq(S["hinf"], S["h0"] + ASp * (AT * S["hT"] + aT - aS - AS * S["h0"]))),
        ("Feature error: h^∞ − h_T = (I − P_S)(h⁰ − h_T) + (A_S⁺A_T − P_S) h_T + A_S⁺(a_T − a_S); "
         "it contracts to (I−P_S)(h⁰−h_T) for all h⁰, h_T iff A_S⁺A_T = P_S and A_S⁺(a_T − a_S) = 0", None),
        ("ker A_S⁺ = ker A_Sᵀ, so A_S⁺(A_T − A_S) = 0 ⇔ A_Sᵀ(A_T − A_S) = 0: aux-compatible", aux),
        ("Class-compatible: the two class heads agree on row(A_S), the only subspace distillation moves", cls),
        ("m ≥ d with A_S of full column rank: P_S = I, class-compatible ⇔ C_S = C_T", None),
    ]
    return sp.And(aux, cls), steps


def _draw_compatible_aux(rng, m, d):
    A_S = rng.standard_normal((m, d))
    E = rng.standard_normal((m, d))
    Pr = A_S @ pinv(A_S)  # projector onto range(A_S) in R^m
    return A_S, A_S + (E - Pr @ E)  # A_T − A_S ⟂ range(A_S): nonzero only when m > d


def _def_check(rng):
    errs = {}
    for m, d in [(3, 6), (5, 5), (9, 4)]:
        A_S, A_T = _draw_compatible_aux(rng, m, d)
        hS0, hT = rng.standard_normal((4, d)), rng.standard_normal((4, d))
        errs[f"compatible flagged m={m}"] = 0.0 if is_aux_compatible(A_S, A_T) else np.inf
        # compatible ⇒ feature error contracts by (I − P_S)
        hinf = feature_fixed_point(hS0, hT, A_S, A_T)
        P = projector(A_S)
        errs[f"contraction m={m}"] = float(np.abs((hinf - hT) - (hS0 - hT) @ (np.eye(d) - P)).max())
        # R1.1 equals the linear model's fixed point with n_in = N = 1 (features = W, input = 1)
        for b in range(2):
            w = fixed_point(hS0[b][:, None], hT[b][:, None], A_S, np.ones((1, 1)), A_T=A_T)
            errs[f"R1.1 = linear fixed point (n=N=1) m={m}"] = float(np.abs(w[:, 0] - hinf[b]).max())
        # an incompatible head is flagged and breaks the contraction
        A_bad = A_S + 0.3 * rng.standard_normal((m, d))
        bad = feature_fixed_point(hS0, hT, A_S, A_bad)
        broke = np.abs((bad - hT) - (hS0 - hT) @ (np.eye(d) - P)).max() > 1e-6
        errs[f"incompatible detected m={m}"] = 0.0 if (not is_aux_compatible(A_S, A_bad) and broke) else np.inf
        # class compatibility: C_T = C_S + Z(I − P_S) is compatible
        C_S = rng.standard_normal((3, d))
        C_T = C_S + rng.standard_normal((3, d)) @ (np.eye(d) - P)
        errs[f"class-compatible flagged m={m}"] = 0.0 if is_class_compatible(C_S, C_T, A_S) else np.inf
    return report("compatibility", errs, 1e-9)


def _def_eval(A_S, A_T, C_S=None, C_T=None, a_S=None, a_T=None, c_S=None, c_T=None):
    out = {"aux_compatible": is_aux_compatible(A_S, A_T, a_S, a_T),
           "aux_residual": aux_compatibility_residual(A_S, A_T, a_S, a_T)}
    if C_S is not None and C_T is not None:
        out["class_compatible"] = is_class_compatible(C_S, C_T, A_S, c_S, c_T)
        out["class_residual"] = class_compatibility_residual(C_S, C_T, A_S, c_S, c_T)
    return out


def _dec_build():
    S = _S()
    sp = S["sp"]
    AS, AT, ASp, aS, aT, CS, CT, P, cS, cT, h0, hT, I = (
        S[k] for k in ("AS", "AT", "ASp", "aS", "aT", "CS", "CT", "P", "cS", "cT", "h0", "hT", "I"))
    e = r"y_{S}^{\infty}-y_{T}"
    terms = (CS * (I - P) * (h0 - hT) + CS * ((ASp * AT - P) * hT + ASp * (aT - aS))
             + (CS - CT) * P * hT + (CS - CT) * (I - P) * hT + (cS - cT))
    r14 = eq(e, (CS - CT) * P * hT + (CS * (I - P) * h0 - CT * (I - P) * hT) + (cS - cT))
    r15 = eq(e, CS * (I - P) * (h0 - hT))
    steps = [
        ("y_S^∞ − y_T = C_S h^∞ + c_S − C_T h_T − c_T with h^∞ from R1.1; add and subtract C_S P_S h_T, C_S h_T", None),
        ("Five terms: untransferred + aux incompatibility + class (in row A) + class (outside row A) + bias", eq(e, terms)),
        ("Aux-compatible (second term 0): R1.4", r14),
        ("…and strictly class-compatible (C_S = C_T, c_S = c_T): R1.5 — exact transfer iff C(I − P_A)(h⁰ − h_T) = 0", r15),
        ("Class-compatible only ((C_S − C_T)P_S = 0): error C_S(I−P_S)h⁰ − C_T(I−P_S)h_T lives entirely outside row(A_S)", None),
    ]
    return eq(e, terms), steps


def _dec_check(rng):
    errs = {}
    for m, d, K in [(3, 7, 4), (6, 6, 3), (9, 5, 2)]:
        B = 5
        hS0, hT = rng.standard_normal((B, d)), rng.standard_normal((B, d))
        A_S, A_T = rng.standard_normal((m, d)), rng.standard_normal((m, d))
        C_S, C_T = rng.standard_normal((K, d)), rng.standard_normal((K, d))
        a_S, a_T, c_S, c_T = (rng.standard_normal(k) for k in (m, m, K, K))
        t = logit_error_decomposition(hS0, hT, C_S, A_S, C_T, A_T, a_S, a_T, c_S, c_T)
        parts = sum(v for k, v in t.items() if k != "total")
        errs[f"terms sum to total m={m}"] = float(np.abs(parts - t["total"]).max())
        # compatible aux heads: aux term vanishes; + strictly class-compatible: only R1.5 is left
        A2, A2T = _draw_compatible_aux(rng, m, d)
        t2 = logit_error_decomposition(hS0, hT, C_S, A2, C_S, A2T, a_S, a_S, c_S, c_S)
        errs[f"aux-compatible: aux term 0 m={m}"] = float(np.abs(t2["aux_incompatibility"]).max())
        r15 = (hS0 - hT) @ (np.eye(d) - projector(A2)) @ C_S.T
        errs[f"R1.5 m={m}"] = float(np.abs(t2["total"] - r15).max())
        # R1.4 with aux-compatible but class-incompatible heads
        t3 = logit_error_decomposition(hS0, hT, C_S, A2, C_T, A2T, a_S, a_S, c_S, c_T)
        P = projector(A2)
        r14 = hT @ P @ (C_S - C_T).T + (hS0 @ (np.eye(d) - P) @ C_S.T - hT @ (np.eye(d) - P) @ C_T.T) + (c_S - c_T)
        errs[f"R1.4 m={m}"] = float(np.abs(t3["total"] - r14).max())
    return report("logit-decomposition", errs, 1e-9)


def _dec_eval(hS0, hT, C_S, A_S, C_T=None, A_T=None, a_S=None, a_T=None, c_S=None, c_T=None):
    return logit_error_decomposition(hS0, hT, C_S, A_S, C_T, A_T, a_S, a_T, c_S, c_T)


def _oracle_build():
    S = _S()
    sp = S["sp"]
    P, h0, hT, I, CS, cS = S["P"], S["h0"], S["hT"], S["I"], S["CS"], S["cS"]
    res = sp.Eq(S["hinf"], (I - P) * h0 + P * hT)
    steps = [("R1.1 with A_S = A_T = A, a_S = a_T (P_S = P_A)", res),
             ("Oracle class logits (R1.3), what P1 compares with the trained student", eq(r"y_S^{\infty}", CS * ((I - P) * h0 + P * hT) + cS))]
    return res, steps


def _oracle_check(rng):
    from .linear import oracle_student_features

    errs = {}
    for m, d in [(2, 6), (6, 6), (8, 5)]:
        A = rng.standard_normal((m, d))
        hS0, hT = rng.standard_normal((4, d)), rng.standard_normal((4, d))
        o = oracle_student_features(hS0, hT, A)
        errs[f"= R1.1 with shared heads m={m}"] = float(np.abs(o - feature_fixed_point(hS0, hT, A)).max())
        # gradient descent on free features reaches it
        h = hS0.copy()
        lr = 0.5 / np.linalg.norm(A, 2) ** 2
        for _ in range(20000):
            h -= lr * ((h - hT) @ A.T) @ A
        errs[f"free-feature GD limit m={m}"] = float(np.abs(h - o).max())
    return report("oracle-features", errs, 1e-9)


def _oracle_eval(hS0, hT, A):
    from .linear import oracle_student_features

    return oracle_student_features(hS0, hT, A)


_FREE = ("Free-feature model: the student's features on each input move freely under gradient flow "
         "(equivalently a feature kernel ∝ I, see ntk-fixed-point); heads frozen during distillation",
         "Aux loss ‖A_S h + a_S − A_T h_T − a_T‖² driven to its minimum (gradient flow to convergence)")

register(Result("oracle-features", "oracle student features (I − P_A)h_S⁰ + P_A h_T and logits (theory R1.2–R1.3)",
                _FREE + ("Shared aux head A_S = A_T = A, a_S = a_T",),
                "P1: the trained student's class logits ≈ C_S[(I−P_A)h_S⁰ + P_A h_T] + c_S; its accuracy should track the "
                "trained student's.", True, _oracle_build, _oracle_eval, _oracle_check, section="compat",
                approximation=""))
register(Result("compatibility", "definitions: aux-compatible (A_Sᵀ(A_T − A_S) = 0, …) and class-compatible ((C_S − C_T)P_S = 0, c_S = c_T)",
                _FREE, "Compatible aux heads move the student's features toward the teacher's on row(A_S); compatible class heads "
                "read that movement as the teacher does. Random aux or class heads are incompatible → chance (P4).",
                True, _def_build, _def_eval, _def_check, section="compat"))
register(Result("logit-decomposition", "class-logit error for arbitrary heads: untransferred + aux-incompatibility + class-incompatibility (R1.4/R1.5)",
                _FREE, "Which of the control conditions loses what: random hidden layers → untransferred term; random aux head → "
                "aux term; random or drifted class head (ΔC) → class terms.", True, _dec_build, _dec_eval, _dec_check,
                section="compat"))
