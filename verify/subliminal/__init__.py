"""Batched split-head teacher/student experiments of the subliminal-learning study.

Stable API (other packages -- ``limen check``, the Ray executor, ``limen bench`` -- code against this)::

    from limen.verify.subliminal import RunConfig, run_sweep, SWEEPS, plan_groups, train_group

    cfg = RunConfig(seed=0, data="digits", m=10, hidden=(256, 256),
                    init={"fc1": "random", "fc2": "random"})      # student init sources (rest: A)
    # frozen, hashable; validated in __post_init__ (ValueError says what is wrong);
    # defaults = the reference protocol (Adam 1e-3, 5+5 epochs, batch 1024, 60 x 1000 U[-1,1] noise).

    records = run_sweep(configs, out="runs/x", device="auto", executor="local", progress=True)
    # -> one record per config (in order), through the road (limen.verify.road) and the results store
    #    out/results.db: skips configs stored by this code version; processes on one out split the work;
    #    options: executor_options={"address": ...}, data_root=..., allow_tf32=False, max_group=None,
    #    measures=["check", Measure(...)], keep_models=False, reuse_stale=False, view=None

    groups = plan_groups(configs)        # list of lists of configs trained together (same shapes)
    recs = train_group(group, device)    # one batched pass -> list of record dicts (one per config, in order)
    recs, models = train_group(group, device, return_models=True)   # + RunModels per config (CPU tensors)
    models[i].forward("teacher" | "teacher_init" | "student" | "student_init", x) -> (h, class_logits, aux_logits)
    models[i].pre_run() -> PreRunModels (no trained student: what a prediction measurement sees)
    models[i].student_init["aux_head"] -> (A, a); models[i].teacher["class_head"] -> (C_T, c_T); ...

    SWEEPS[name](seeds=20, data="digits", quick=False, **overrides) -> list[RunConfig]
    # names: init-controls, m-sweep, aux-perturbation, class-perturbation, width, emnist-classes,
    #        student-width, student-depth, mlp-cnn, noise-budget, m1-noise, noise1-m, noise-pool, study

Record: ``{"key": config_key(cfg), "config": config_dict(cfg), "seed": ..., "metrics": {...},
"timings": {...}, "run_info": {...}}`` (``run_sweep`` adds ``code_version``, ``producer`` and one field
per measurement). Metrics (all on the test set unless named otherwise):
teacher/student accuracy and class cross-entropy (``teacher_init_acc``, ``teacher_final_acc``,
``student_init_acc``, ``student_final_acc``, ``*_ce``), ``student_init_aux_mse`` /
``student_final_aux_mse`` (held-out noise), ``agreement`` (student vs teacher argmax),
``class_logit_mse``, ``cka_test``/``cka_noise`` (+ ``_init``: linear CKA of last-hidden
representations, teacher vs student), ``tau`` (head overlap of the student's initial heads;
``tau_final``, ``tau_teacher``), ``principal_cos`` (cosines of the principal angles between
row(C) and row(A)), ``aux_sigma_min``/``aux_sigma_max``, ``oracle_acc`` (oracle projected student
C_S[h_S0 + A_S^+(z_T - z_S0)] + c_S, which is C_S[(I - P_A) h_S0 + P_A h_T] + c_S for compatible aux
heads: theory R1.1/R1.3), ``oracle_agreement``, ``cos`` (weight cosines per layer and comparison),
training losses. See ``docs/subliminal.md``.
"""

import importlib

# Exports load on first use (PEP 562), so `limen --help` does not import torch.
_EXPORTS = {
    "config": ("DEFAULT_CNN_SPEC", "PAPER_CNN_SPEC", "Perturbation", "RunConfig", "derived_seed"),
    "engine": ("TEACHER_CACHE", "PreRunModels", "RunModels", "TeacherCache", "group_key", "plan_groups", "teacher_key",
               "train_group"),
    "run": ("mean_ci", "run_sweep", "summarize", "write_summary"),
    "sweeps": ("INIT_CONDITIONS", "SWEEPS"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}


def __getattr__(name: str):
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)


__all__ = ["DEFAULT_CNN_SPEC", "INIT_CONDITIONS", "PAPER_CNN_SPEC", "Perturbation", "PreRunModels", "RunConfig", "RunModels",
           "SWEEPS", "TEACHER_CACHE", "TeacherCache", "derived_seed", "group_key", "mean_ci", "plan_groups",
           "run_sweep", "summarize", "teacher_key", "train_group", "write_summary"]
