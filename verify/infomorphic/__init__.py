"""Infomorphic networks: neurons that learn a local PID goal (Schneider et al., ICLR 2025, arXiv 2412.02482).

Each hidden neuron has feedforward (F), context (C = label) and lateral (L) inputs and
maximises ``G = Σ_α γ_α Π_α + γ_res H_res`` over its 18 I^sx atoms, estimated per
minibatch from binned sources and its soft output θ by the sample-based estimator
:func:`limen.estimators.sample.sx_sample_goal` (all neurons of a layer in one pass).
See docs/infomorphic.md.

Stable API
----------
``compare_models(data="digits", n_hidden=100, seeds=5, epochs=None, device="auto",
models=("backprop", "optimised", "heuristic", "readout", "random-projection"), out=None) -> dict``
    (:mod:`.compare`) trains every model for every seed (resuming from ``out/records.jsonl``)
    and returns ``{"records": [...], "summary": {...}}``: per model the test-accuracy mean,
    sd and Student-t 95 % interval over seeds (fractions; each run's accuracy is the mean
    over its evaluation passes; the study's MNIST value at N = 100 for reference), and
    whether the study's ordering at N = 100,
    ``backprop ≳ optimised > heuristic > readout > random-projection``, holds: ``A > B`` holds
    when the Welch 95 % CI of the difference of means lies above 0 (fails below 0,
    inconclusive otherwise); ``A ≳ B`` likewise with the bound −1 pp (``margin=0.01``);
    a relation is judged only for runs of ≥ 100 epochs or at a measured plateau, and
    "X > readout" only when backprop beats the readout (else "not judged", with the reason).
    ``summary["ordering_holds"]`` is True, False, or None (some relation inconclusive or
    not judged); ``summary["rules"]`` states the rules. Default epochs: 500 on digits
    (2 steps per epoch), 100 otherwise.
``InfomorphicConfig`` / ``preset(model, **fields)`` / ``train_run(config, device=, data=, out=)``
    (:mod:`.train`) one run -> record ``{"key", "config", "metrics", "run_info"}``;
    models: ``PRESETS`` (optimised, optimised-sparse, heuristic, backprop, readout,
    random-projection, bivariate-fc[-optimised], bivariate-fl[-optimised]).
``parse_goal(spec, kind)``, ``atom_names(kind)``, ``GOALS`` (:mod:`.goals`) goal vectors γ.
``InfomorphicNet`` (:mod:`.model`) the network; ``goal_search`` (:mod:`.search`, Optuna).

The CLI is ``limen run infomorphic`` (:mod:`.cli`); the benchmark ``limen bench infomorphic``.
"""

from __future__ import annotations

__all__ = ["compare_models", "InfomorphicConfig", "preset", "train_run", "PRESETS", "parse_goal", "atom_names",
           "GOALS", "InfomorphicNet", "goal_search"]

_LAZY = {
    "compare_models": ".compare", "InfomorphicConfig": ".train", "preset": ".train", "train_run": ".train",
    "PRESETS": ".train", "parse_goal": ".goals", "atom_names": ".goals", "GOALS": ".goals",
    "InfomorphicNet": ".model", "goal_search": ".search",
}


def __getattr__(name):  # lazy: importing the package does not import torch
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(name)
