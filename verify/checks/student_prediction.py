"""The predictions of one run's student as versioned road measurements, and how they compare with it.

Every function here receives a run's trained networks only to *measure*: the predictors read its pre-run view
(``RunModels.pre_run()``) and the trained student is read after they have run. Three named measurements:

* ``"predict"`` (:func:`response_measure`): the linear response (:mod:`limen.verify.subliminal.predict`), the
  eNTK baseline (the same response with the function target), the failure bound (theory
  ``segment-margin-certificate``, beside the previous ``response-margin-certificate``) and the teacher's
  first-order share. Shared by ``predict-student``, ``init-controls``, ``oracle-student``, ``transfer-fraction``,
  ``width-transition`` and ``aux-perturbation``.
* ``"linearised"`` / ``"frozen_exact_g"`` / ``"last_layer_exact"`` (:func:`linearised_measure`,
  :func:`frozen_measure`, :func:`partial_measure`): the exact linearised student, the frozen-Adam model with the
  exact G, and the student with its first body layers at first order and its last hidden layer and head exact
  (:mod:`limen.verify.subliminal.linear_student`), diagnostics that cost a training run each.
* ``"subsampled"`` (:func:`subsampled_measure`): the subsampled-Adam student
  (:mod:`limen.verify.subliminal.surrogate`), ``predict-student``'s prediction on runs whose target is not
  reachable (its cost against training: ``limen bench predict``).

Their versions cover this module and the predictors, not the checks that tabulate them: a change in how a check
reports re-measures nothing.
"""

from __future__ import annotations

import time

import numpy as np

FIELD = "predict"
LIN_FIELD = "linearised"
FROZEN_FIELD = "frozen_exact_g"
PARTIAL_FIELD = "last_layer_exact"
SUB_FIELD = "subsampled"

#: Failure bound (theory segment-margin-certificate): the student within k·s(x), s(x) = ‖y_P − y_S0‖_∞, of the
#: segment from y_S0 + α_min (y_P − y_S0) to y_P -- the predicted change points the right way, its size is known
#: only to [α_min, 1] (the transfer fraction is over-predicted). Its scope is a student that starts from the
#: teacher's initial body *and* class head (shared, a random or perturbed aux head): the class head gets no
#: gradient, so only then do the student's class logits carry the teacher's change; other runs get no guarantee (0).
#: Calibrated once on the digits at --quick sizes (seeds 0-5, the 60 runs in scope): α_min = 0.2 (explored on a grid
#: of 0.05), and k = 0.021, 4/3 of 0.0155, the smallest k for which the guaranteed accuracy stayed at or below the
#: measured one on every run. On the digits the bound is therefore in-sample; elsewhere it is a prediction.
CERT_ALPHA, CERT_K = 0.2, 0.021
#: The previous bound (theory response-margin-certificate, radius k·s(x) with s(x) = ‖y_P − y_S0‖_∞ +
#: ‖y_P − y_eNTK‖_∞, k = 0.16 calibrated the same way), reported beside it.
MARGIN_K = 0.16


def _corr(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64).reshape(-1), np.asarray(b, dtype=np.float64).reshape(-1)
    if a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def _logit_views(models, pre, data, predicted: dict) -> dict:
    """Test-set class logits of the initial student, the teacher and every predicted parameter set (float64),
    the labels, and the class-logit change of copying the teacher's features into the student's class head."""
    import torch

    from limen.verify.subliminal import predict as P

    from .measure import copy_change

    x, spec = data.x_test, models.student_spec
    with torch.no_grad():
        hT = pre.forward("teacher", x)[0].double().cpu().numpy()
        hS0 = pre.forward("student_init", x)[0].double().cpu().numpy()
    logits = lambda sp, p: P.class_logits(sp, p, x).double().cpu().numpy()  # noqa: E731
    return {"y0": logits(spec, pre.student_init), "yT": logits(models.teacher_spec, pre.teacher),
            "pred": {k: logits(spec, p) for k, p in predicted.items()}, "labels": data.y_test.cpu().numpy(),
            "ideal": copy_change(hT, hS0, pre.student_init["class_head"][0].double().cpu().numpy())}


def _scores(v: dict) -> dict:
    """Accuracy, transfer fraction and remaining logit gap of every prediction in ``v`` (:func:`_logit_views`)."""
    from .measure import fraction, gap

    y0, yT, lab = v["y0"], v["yT"], v["labels"]
    return {"acc": {k: float(np.mean(y.argmax(1) == lab)) for k, y in v["pred"].items()},
            "transfer_fraction": {k: fraction(y - y0, v["ideal"]) for k, y in v["pred"].items()},
            "remaining_gap": {k: gap(y - yT, y0 - yT) for k, y in v["pred"].items()}}


def _student_corr(models, data, v: dict) -> tuple[dict, np.ndarray]:
    """Per-example correlation of each predicted class-logit change with the trained student's (read only here),
    and the student's logits."""
    from limen.verify.subliminal import predict as P

    yS = P.class_logits(models.student_spec, models.student, data.x_test).double().cpu().numpy()
    return {k: _corr(y - v["y0"], yS - v["y0"]) for k, y in v["pred"].items()}, yS


def measure(models, data) -> dict:
    """Predictions of one run, each computed from its pre-run view only, and how they compare with its student.

    Stored under ``"predict"``: the target kind; predicted accuracy, transfer fraction and remaining logit gap of
    the linear response and of the eNTK baseline (the measured ones are the engine's ``student_final_acc`` and the
    ``"check"`` measurement's); the per-example correlation of predicted and measured class-logit changes; the
    failure bound (guaranteed accuracy, certified examples the student gets wrong); the teacher's first-order
    share; the prediction's wall time.
    """
    from limen import theory
    from limen.verify.subliminal import predict as P

    pre = models.pre_run()  # the prediction sees no trained student
    dev = data.x_test.device
    t0 = time.perf_counter()
    lr_pred = P.predict(pre, data, device=dev)
    t1 = time.perf_counter()
    entk = P.predict(pre, data, target="function", device=dev)
    t2 = time.perf_counter()
    v = _logit_views(models, pre, data, {"linear_response": lr_pred["params"], "entk": entk["params"]})
    y0, yP, yE, lab = v["y0"], v["pred"]["linear_response"], v["pred"]["entk"], v["labels"]
    out = {"target": lr_pred["target"], **_scores(v),
           "seconds": {"linear_response": t1 - t0, "entk": t2 - t1},
           "bound": {"k": None, "guaranteed_acc": 0.0}}   # no guarantee without a shared body
    if lr_pred["target"] != "function":
        cert = theory.segment_margin_certificate(y0, yP, lab, CERT_ALPHA, CERT_K)
        applies = bound_applies(pre.config)
        out["bound"] = {"alpha_min": CERT_ALPHA, "k": CERT_K, "applies": applies,
                        "certified_acc": cert["accuracy_lower_bound"],
                        "guaranteed_acc": cert["accuracy_lower_bound"] if applies else 0.0}
        scale = np.abs(yP - y0).max(1) + np.abs(yP - yE).max(1)
        out["bound_margin"] = {"k": MARGIN_K, "guaranteed_acc":
                               theory.relative_margin_certificate(yP, scale, lab, MARGIN_K)["accuracy_lower_bound"]}
        out["teacher_first_order"] = _teacher_first_order(pre, data.x_test, theory)
    # -- measured: the trained student, read only now
    out["corr"], yS = _student_corr(models, data, v)
    if out["bound"].get("applies"):
        out["bound"]["violations"] = float(np.mean(cert["guaranteed"] & (yP.argmax(1) == lab) & (yS.argmax(1) != lab)))
    return out


def bound_applies(cfg) -> bool:
    """Whether the failure bound makes a claim on a run whose body starts at the teacher's initial one (a parameter
    target): only if its class head is the teacher's initial one too."""
    from limen.verify.subliminal.predict import perturbed

    same = cfg.sources("student")["class_head"] == cfg.sources("teacher")["class_head"] != "random"
    return same and not perturbed(cfg, "class_head")


def measure_linearised(models, data, optimiser: str = "adam") -> dict:
    """The exact linearised student of one run (:mod:`limen.verify.subliminal.linear_student`, from its pre-run
    view) and how it compares with the trained student; stored under ``"linearised"``: target kind, accuracy,
    transfer fraction, remaining gap, class-logit correlation, wall time. ``optimiser="frozen"``: the same linear
    model under the response's frozen optimiser model with the exact G (stored under ``"frozen_exact_g"``)."""
    from limen.verify.subliminal.linear_student import linearised_student

    pre = models.pre_run()
    t0 = time.perf_counter()
    lin = linearised_student(pre, data, device=data.x_test.device, optimiser=optimiser)
    return _compare(models, pre, data, lin, time.perf_counter() - t0)


def _compare(models, pre, data, lin: dict, seconds: float) -> dict:
    """A trained model of the student (``{"params", "target", "loss_last"}``) against the trained student."""
    v = _logit_views(models, pre, data, {"model": lin["params"]})
    scores = {k: d["model"] for k, d in _scores(v).items()}
    corr, _ = _student_corr(models, data, v)
    return {"target": lin["target"], **scores, "corr": corr["model"], "seconds": seconds,
            "loss_last": lin["loss_last"]}


def measure_frozen(models, data) -> dict:
    """:func:`measure_linearised` with the frozen-Adam model and the exact, coupled G."""
    return measure_linearised(models, data, optimiser="frozen")


def measure_partial(models, data) -> dict:
    """The student with every body layer but the last at first order and the last hidden layer and head exact
    (``partially_linearised_student(nonlinear_from=<last body layer>)``, teacher's logits as target), compared with
    the trained student as :func:`measure_linearised` does; stored under ``"last_layer_exact"``."""
    from limen.verify.subliminal.linear_student import partially_linearised_student

    pre = models.pre_run()
    t0 = time.perf_counter()
    out = partially_linearised_student(pre, data, pre.student_spec.body[-1].name, device=data.x_test.device)
    return _compare(models, pre, data, out, time.perf_counter() - t0)


def measure_subsampled(models, data) -> dict:
    """The subsampled-Adam student of one run (``surrogate.subsampled_student``, from its pre-run view), compared
    with the trained student as :func:`measure_linearised` does (no ``loss_last``), with its batch and how its first
    layer's gradient was made; stored under ``"subsampled"``."""
    from limen.verify.subliminal.surrogate import subsampled_student

    pre = models.pre_run()
    t0 = time.perf_counter()
    out = subsampled_student(pre, data, device=data.x_test.device)
    seconds = time.perf_counter() - t0
    return {**_compare(models, pre, data, {**out, "loss_last": None}, seconds), "batch": out["batch"],
            "first_layer": out["first_layer"]}


def _teacher_first_order(pre, x, theory) -> dict:
    """Validity of linearisation: the share of the teacher's own class-logit change (test set) that its
    first-order term carries, and the remainder ratio (theory.first_order_share / remainder_ratio)."""
    from limen.verify.subliminal import predict as P

    dev = x.device
    t0 = {k: (w.to(dev), b.to(dev)) for k, (w, b) in pre.teacher_init.items()}
    t1 = {k: (w.to(dev), b.to(dev)) for k, (w, b) in pre.teacher.items()}
    layers0 = P.body_layers(t0, pre.teacher_spec)
    deltas = [(t1[n][0] - t0[n][0], t1[n][1] - t0[n][1]) for n in (lyr.name for lyr in pre.teacher_spec.body)]
    acts, masks = P.relu_forward(layers0, x.reshape(x.shape[0], -1))
    C0, c0 = t0["class_head"]
    dC, dc = t1["class_head"][0] - C0, t1["class_head"][1] - c0
    lin = (P.tangent(layers0, deltas, acts, masks) @ C0.T + acts[-1] @ dC.T + dc).double().cpu().numpy()
    actual = (P.class_logits(pre.teacher_spec, t1, x) - P.class_logits(pre.teacher_spec, t0, x)).double()
    actual = actual.cpu().numpy()
    return {"share": theory.first_order_share(lin, actual), "remainder_ratio": theory.remainder_ratio(lin, actual)}


def response_measure():
    """The named, versioned measurement of the road (its version covers this module and the predictor)."""
    from limen.verify.road import MEASURE_SOURCES, Measure

    return Measure(FIELD, f"{__name__}:measure",
                   sources=(__name__, "limen.verify.subliminal.predict", *MEASURE_SOURCES))


def _training_measure(field: str, fn: str):
    from limen.verify.road import MEASURE_SOURCES, Measure

    return Measure(field, f"{__name__}:{fn}",
                   sources=(__name__, "limen.verify.subliminal.predict", "limen.verify.subliminal.linear_student",
                            *MEASURE_SOURCES))


def linearised_measure():
    """The exact linearised student as a named, versioned measurement (``predict-student`` only: it trains)."""
    return _training_measure(LIN_FIELD, "measure_linearised")


def frozen_measure():
    """The frozen-Adam model with the exact G as a named, versioned measurement (``predict-student`` at full size)."""
    return _training_measure(FROZEN_FIELD, "measure_frozen")


def partial_measure():
    """The last-layer-exact student as a named, versioned measurement (``predict-student`` at full size)."""
    return _training_measure(PARTIAL_FIELD, "measure_partial")


def subsampled_measure():
    """The subsampled-Adam student as a named, versioned measurement (``predict-student``, every run)."""
    from limen.verify.road import MEASURE_SOURCES, Measure

    return Measure(SUB_FIELD, f"{__name__}:measure_subsampled",
                   sources=(__name__, "limen.verify.subliminal.predict", "limen.verify.subliminal.linear_student",
                            "limen.verify.subliminal.surrogate", *MEASURE_SOURCES))


def table(labelled, records, path, field: str = FIELD) -> dict:
    """{condition: {m: {seed: value}}} of ``record[field]`` at ``path`` (e.g. ("acc", "linear_response"))."""
    out: dict = {}
    for (cond, m, cfg), rec in zip(labelled, records):
        v = rec[field]
        for k in path:
            v = v[k]
        out.setdefault(cond, {}).setdefault(m, {})[cfg.seed] = float(v)
    return out
