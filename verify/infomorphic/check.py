"""``infomorphic-ordering``: the study's model ordering at N = 100 hidden neurons.

Prediction (Schneider et al., ICLR 2025, MNIST, digest §2.9): with 100 hidden neurons,
test accuracy orders as

    backprop ≳ optimised > heuristic > readout > random projection

(MNIST medians: 95.4, 95.2, 93.4, 91.9, 80.6 %). Experiment:
:func:`limen.verify.infomorphic.compare_models` trains the five models for several seeds
on ``--data`` (digits by default; Fashion-MNIST or MNIST where available).
Verdicts on the Welch 95 % interval of each difference of mean test accuracies:
``>`` passes when the interval lies above 0, ``≳`` when it lies above −1 pp; fail when
it lies wholly below the bound, inconclusive otherwise. The per-model accuracies are
reported (with the study's MNIST numbers for reference, not as predictions for other
data sets). ``--quick``: 2 seeds and fewer epochs.
"""

from __future__ import annotations

from .compare import DEFAULT_EPOCHS, DEFAULT_MODELS, STUDY_MNIST_N100, STUDY_ORDER, compare_models

QUICK_EPOCHS = {"digits": 60, "fashion-mnist": 5, "mnist": 5}
MARGIN = 0.01


def run(ctx):
    from ..checks.core import CheckResult, Measurement, at_least, info, mean_ci

    n_seeds = ctx.n_seeds(full=5, quick=2)
    epochs = (QUICK_EPOCHS if ctx.quick else DEFAULT_EPOCHS).get(ctx.data, 10 if ctx.quick else 100)
    res = compare_models(ctx.data, n_hidden=100, seeds=n_seeds, epochs=epochs, device=ctx.device,
                         models=DEFAULT_MODELS, out=ctx.out, margin=MARGIN, data_root=ctx.data_dir,
                         progress=ctx.progress)
    s = res["summary"]
    rows = []
    for o in s["ordering"]:
        m = Measurement(o["diff"], o["lo"], o["hi"], n_seeds, "welch95")
        bound = 0.0 if o["rel"] == ">" else -MARGIN
        rows.append(at_least(f"test accuracy {o['better']} − {o['worse']}", bound, m,
                             predicted=("> 0" if o["rel"] == ">" else f"≳ 0 (≥ −{MARGIN:g})"),
                             detail=f"study's ordering: {o['relation']}"))
    for model in DEFAULT_MODELS:
        accs = [r["metrics"]["test_acc"] for r in res["records"] if r["config"]["model"] == model]
        ref = STUDY_MNIST_N100.get(model)
        rows.append(info(f"test accuracy, {model}", mean_ci(accs),
                         predicted=f"MNIST {ref / 100:.3f}" if ref else None))
    notes = [f"{len(res['records'])} runs: {n_seeds} seeds × {len(DEFAULT_MODELS)} models, N = 100, "
             f"{epochs} epochs, batch 1024, data {ctx.data}; test accuracy with zero label context and the "
             "flip rule; intervals: Welch 95 % over seeds for differences, Student t for levels.",
             f"ordering holds: {s['ordering_holds']} (None = some relation inconclusive)."]
    plots = []
    try:
        from .plot import mean_atoms

        f = mean_atoms(res["records"], ctx.out / "atoms.png", title="PID atoms of trained hidden neurons (N = 100)")
        plots += [f] if f else []
    except Exception as exc:  # a plot never fails the check
        notes.append(f"atoms plot failed: {exc}")
    return CheckResult(
        preset="infomorphic-ordering",
        title="infomorphic networks at N = 100: backprop ≳ optimised > heuristic > readout > random projection",
        rows=rows,
        config={"data": ctx.data, "n_hidden": 100, "seeds": n_seeds, "epochs": epochs, "models": list(DEFAULT_MODELS),
                "margin": MARGIN, "order": [list(t) for t in STUDY_ORDER], "rules": s["rules"]},
        notes=notes,
        plots=plots,
        series={"summary": s},
    )


def _preset():
    from ..checks.core import Preset

    return Preset(name="infomorphic-ordering",
                  title="infomorphic networks at N = 100: the study's ordering of five models",
                  run=run, in_all=True)


PRESET = _preset()
