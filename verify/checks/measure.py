"""Theory quantities measured on trained split-head runs (float64 numpy on the test set).

:func:`run_measures` takes one run's trained networks (``RunModels`` from
``train_group(..., return_models=True)``) and its test set, and returns the
quantities the checks compare with :mod:`limen.theory`, as a JSON-ready dict kept
in the run's record under ``"check"``. Every prediction is computed by a theory
function; this module only evaluates the networks and forms measured ratios.

Notation: ``h`` last-hidden features, ``y`` class logits, ``T`` teacher (trained),
``S0``/``S`` student before/after distillation, ``C_S`` the student's class head
(it gets no gradient), ``A_S`` the student's initial aux head.

* transfer fraction -- the student's class-logit change projected on the change a
  student with its class head would get by copying the teacher's features:
  ``f = ⟨y_S − y_S0, C_S(h_T − h_S0)⟩ / ‖C_S(h_T − h_S0)‖²`` (Frobenius over the test
  set). Theory R1/R2 predict ``f ≈ τ ≈ min(m, d)/d``; the per-run oracle value uses
  the fixed point ``h_S0 + A_S⁺(z_T − z_S0)`` (R1.1).
* remaining logit gap -- ``‖y_S − y_T‖² / ‖y_S0 − y_T‖²`` (0: student = teacher).
* margin bound -- ``B(x) = theory.logit_error_bound(...)`` against the measured
  ``‖y_S(x) − y_T(x)‖_∞`` and the oracle's ``‖y_S^∞(x) − y_T(x)‖_∞``;
  ``theory.margin_bound`` turns ``B`` into accuracy / agreement lower bounds.

:func:`class_head_prediction` is the class-perturbation prediction of one *unperturbed*
run: ``theory.class_perturbation_accuracy`` / ``…_sigma_critical`` from the trained
student's test logits and last-hidden features (the perturbed runs of the same seed
have the same features: the class head gets no gradient).
"""

from __future__ import annotations

import numpy as np

N_SAMPLE = 200  # per-example values kept in the record for plots


def _np(t):
    return t.detach().cpu().double().numpy()


def fraction(num: np.ndarray, den: np.ndarray) -> float:
    """``⟨num, den⟩ / ‖den‖²`` (Frobenius): the transfer fraction of a change ``num`` along ``den``
    (the projection coefficient of ``theory.first_order_share``)."""
    from limen import theory

    return theory.first_order_share(num, den)


def copy_change(h_teacher: np.ndarray, h_student0: np.ndarray, class_weight: np.ndarray) -> np.ndarray:
    """``(h_T − h_S0) C_Sᵀ``: the class-logit change of a student that copies the teacher's features into its own
    class head (the reference of the transfer fraction)."""
    return (h_teacher - h_student0) @ class_weight.T


def gap(a: np.ndarray, b: np.ndarray) -> float:
    """``‖a‖² / ‖b‖²``: the remaining logit gap (a = y − y_T, b = y_S0 − y_T)."""
    d = float(np.sum(b * b))
    return float(np.sum(a * a) / d) if d > 0 else float("nan")


def run_measures(models, data) -> dict:
    """Theory-facing measurements of one trained run on its test set (see module docstring)."""
    import torch

    from limen import theory
    from limen.verify.subliminal.metrics import oracle_features, pinv_full_rank

    x = data.x_test.detach().cpu()
    labels = data.y_test.detach().cpu().numpy()
    hT, yT, _ = (_np(t) for t in models.forward("teacher", x))
    hS0, yS0, _ = (_np(t) for t in models.forward("student_init", x))
    hS, yS, _ = (_np(t) for t in models.forward("student", x))
    C_S, c_S = (_np(t) for t in models.student_init["class_head"])
    A_S, a_S = (_np(t) for t in models.student_init["aux_head"])
    C_T, c_T = (_np(t) for t in models.teacher["class_head"])
    A_T, a_T = (_np(t) for t in models.teacher["aux_head"])

    t64 = lambda a: torch.from_numpy(a)[None]  # noqa: E731 - one run as a batch of one, float64
    h_or = oracle_features(t64(hS0), t64(hT @ A_T.T + a_T), t64(hS0 @ A_S.T + a_S), pinv_full_rank(t64(A_S)))[0].numpy()
    y_or = h_or @ C_S.T + c_S
    target = copy_change(hT, hS0, C_S)

    B = np.asarray(theory.logit_error_bound(hS0, hT, C_S, A_S, C_T, A_T, a_S, a_T, c_S, c_T), dtype=float)
    err = np.abs(yS - yT).max(axis=1)
    err_or = np.abs(y_or - yT).max(axis=1)
    mb = theory.margin_bound(yT, B, labels)
    pos = B > 0
    tight = err[pos] / B[pos]  # examples with B = 0 (exact transfer predicted) have no ratio
    tight_or = err_or[pos] / B[pos]
    n = min(N_SAMPLE, len(labels))
    return {
        "transfer_fraction": fraction(yS - yS0, target),
        "transfer_fraction_oracle": fraction(y_or - yS0, target),
        "remaining_gap": gap(yS - yT, yS0 - yT),
        "remaining_gap_oracle": gap(y_or - yT, yS0 - yT),
        "bound_violation_frac": float(np.mean(err > B)),
        "bound_violation_frac_oracle": float(np.mean(err_or > B * (1 + 1e-9) + 1e-9)),
        "bound_tightness_median": float(np.median(tight)) if tight.size else None,
        "bound_max_ratio": float(tight.max()) if tight.size else None,
        "bound_max_ratio_oracle": float(tight_or.max()) if tight.size else None,
        "accuracy_lower_bound": float(mb["accuracy_lower_bound"]),
        "accuracy_lower_bound_r61": float(mb["accuracy_lower_bound_r61"]),
        "agreement_lower_bound": float(mb["agreement_lower_bound"]),
        "sample_bound": B[:n].tolist(),
        "sample_err": err[:n].tolist(),
        "sample_err_oracle": err_or[:n].tolist(),
        "sample_margin": np.asarray(mb["margin"])[:n].tolist(),
    }


def class_head_prediction(models, data, sigmas) -> dict:
    """Predicted accuracy of the trained student under class-head noise σ (weights and bias).

    ``acc(σ) = mean_x E_z Π_{j≠label} Φ((y_label − y_j)/(σ √(‖h‖² + 1)) + z)`` on ``sigmas``
    and ``σ*`` with ``acc(σ*) = (acc(0) + 1/K)/2`` (theory ``class-perturbation-sigma-critical``).
    """
    from limen import theory

    h, y, _ = (_np(t) for t in models.forward("student", data.x_test.detach().cpu()))
    labels = data.y_test.detach().cpu().numpy()
    star = theory.class_perturbation_sigma_critical(y, h, labels, bias=True)
    acc = theory.class_perturbation_accuracy(y, h, labels, np.asarray(sigmas, dtype=np.float64), bias=True)
    return {**star, "sigmas": [float(v) for v in sigmas], "predicted_accuracy": np.asarray(acc).tolist()}
