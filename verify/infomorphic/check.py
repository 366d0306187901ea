"""``infomorphic-ordering``: the study's model ordering at N = 100 hidden neurons, judged where the data can decide it.

Prediction (Schneider et al., *What should a neuron aim for?*, ICLR 2025, arXiv 2412.02482;
MNIST, the main accuracy figure, ``paper_trivariate/Figures/MNIST_Performances.pdf`` in
Priesemann-Group/Infomorphic_Networks): with 100 hidden neurons, test accuracy orders as

    backprop ≳ optimised > heuristic > readout > random projection

(MNIST medians: 95.4, 95.2, 93.4, 91.9, 80.6 %). Experiment:
:func:`limen.verify.infomorphic.compare_models` trains the five models for several seeds
on ``--data`` (digits by default; Fashion-MNIST or MNIST where available); each run's test
accuracy is the mean over 5 stochastic evaluation passes. Verdicts on the Welch 95 %
interval of each difference of mean test accuracies: ``>`` passes when the interval lies
above 0, ``≳`` when it lies above −1 pp; fail when it lies wholly below the bound,
inconclusive otherwise — but only where the comparison is informative (the rules of
:mod:`limen.verify.infomorphic.compare`): runs at the study's length (100 epochs of 47
steps, i.e. 100 epochs on MNIST-size data) or at a measured plateau, and for
"X > readout" room above the readout (backprop beats it). Other relations are INFO rows
that say why; on the embedded digits (no room above the readout, still learning after
500 epochs of 2 steps) that is every relation. The per-model accuracies are reported (with the
study's MNIST numbers for reference, not as predictions for other data sets), with the
spread of the evaluation passes, the plateau measurement and the share of hidden neurons
whose label context collapsed into one bin. ``--quick`` is a smoke run: 2 seeds, few
epochs, no verdicts.
"""

from __future__ import annotations

from .compare import DEFAULT_EPOCHS, DEFAULT_MODELS, STUDY_MNIST_N100, STUDY_ORDER, compare_models, relation_rows

QUICK_EPOCHS = {"digits": 60, "fashion-mnist": 5, "mnist": 5}
MARGIN = 0.01
TITLE = "infomorphic networks at N = 100: backprop ≳ optimised > heuristic > readout > random projection"


def _model_detail(s: dict) -> str:
    parts = [f"{s['n']} seeds × {s['eval_passes']} evaluation passes"]
    if s["eval_passes"] > 1:
        parts.append(f"spread of the passes (sd, mean over seeds) {100 * s['eval_sd']:.2f} pp")
    p = s["plateau"]
    if "change" in p:
        parts.append(f"validation change over the last {p['window']} epochs {100 * p['change']:+.2f} pp "
                     f"[{100 * p['lo']:+.2f}, {100 * p['hi']:+.2f}]" + (" (plateau)" if p["plateau"] else ""))
    if s["context_collapsed_share"] is not None:
        parts.append(f"hidden neurons with the label context in one bin: {100 * s['context_collapsed_share']:.0f} %")
    return "; ".join(parts)


def run(ctx):
    from ..checks.core import CheckResult, Measurement, info, mean_ci

    n_seeds = ctx.n_seeds(full=5, quick=2)
    epochs = (QUICK_EPOCHS if ctx.quick else DEFAULT_EPOCHS).get(ctx.data, 10 if ctx.quick else 100)
    res = compare_models(ctx.data, n_hidden=100, seeds=n_seeds, epochs=epochs, device=ctx.device,
                         models=DEFAULT_MODELS, out=ctx.out, margin=MARGIN, data_root=ctx.data_dir,
                         progress=ctx.progress, smoke=ctx.quick)
    s = res["summary"]
    rows = relation_rows(s["ordering"])
    h = s["headroom"]
    if h is not None:
        rows.append(info("room above the readout: test accuracy backprop − readout",
                         Measurement(h["diff"], h["lo"], h["hi"], h["n"], "welch95"), predicted="> 0 to judge 'X > readout'",
                         detail="room" if h["room"] else "no room: 'X > readout' is not judged"))
    for model in DEFAULT_MODELS:
        accs = [r["metrics"]["test_acc"] for r in res["records"] if r["config"]["model"] == model]
        ref = STUDY_MNIST_N100.get(model)
        rows.append(info(f"test accuracy, {model}", mean_ci(accs),
                         predicted=f"MNIST {ref / 100:.3f}" if ref else None, detail=_model_detail(s["models"][model])))
    notes = []
    if ctx.quick:
        notes.append("SMOKE RUN (--quick): 2 seeds and a few epochs check that the pipeline works; no relation is "
                     "judged. Verdicts need the full size (5 seeds) on data that can decide the claim, e.g. "
                     "--data fashion-mnist (100 epochs).")
    notes += [f"{len(res['records'])} runs: {n_seeds} seeds × {len(DEFAULT_MODELS)} models, N = 100, "
              f"{epochs} epochs, batch 1024, data {ctx.data} standardised with its own training mean and std; "
              "test accuracy with zero label context and the flip rule, mean over the evaluation passes; "
              "intervals: Welch 95 % over seeds for differences, Student t for levels.",
              f"judged only where informative: {s['rules']['judged']}.",
              f"ordering holds: {s['ordering_holds']} (None = some relation inconclusive or not judged)."]
    plots = []
    try:
        from .plot import mean_atoms

        f = mean_atoms(res["records"], ctx.out / "atoms.png", title="PID atoms of trained hidden neurons (N = 100)")
        plots += [f] if f else []
    except Exception as exc:  # a plot never fails the check
        notes.append(f"atoms plot failed: {exc}")
    return CheckResult(
        preset="infomorphic-ordering",
        title=TITLE + (" — smoke run (--quick), no verdicts" if ctx.quick else ""),
        rows=rows,
        config={"data": ctx.data, "n_hidden": 100, "seeds": n_seeds, "epochs": epochs, "models": list(DEFAULT_MODELS),
                "margin": MARGIN, "smoke": ctx.quick, "order": [list(t) for t in STUDY_ORDER], "rules": s["rules"]},
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
