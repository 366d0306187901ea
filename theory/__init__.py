"""Symbolic (sympy) models of subliminal transfer with numpy evaluators.

This package is a leaf: it imports neither torch nor :mod:`limen.verify`. sympy is
imported only when a derivation is built (``Result.expr``, ``.latex()``, ``.steps()``),
so the numpy evaluators below are cheap to import.

Stable API
==========
Other parts of limen (``limen check``, the subliminal engine) call these names; their
signatures and meanings are kept stable.

Registry::

    theory.list_results() -> list[str]
    theory.get(name) -> Result      # .name .title .expr .assumptions .predicts .exact .approximation
                                    # .latex() .steps() .evaluate(**numbers) .check(rng) -> CheckReport

Shapes (float64): ``W`` (d, n_in); aux head ``A`` (m, d); class head ``C`` (K, d); noise
``X`` (n_in, N) with samples as **columns**; features ``h`` with the feature axis **last**
((d,) or (B, d), the torch layout). Loss normalisation, unless ``reduction`` says otherwise:
the protocol's ``F.mse_loss(student_aux, teacher_aux)`` with mean reduction over batch × m,
``L = 1/(N m) · ‖A (W − W_T) X‖_F²`` (``reduction="sum"`` → ``c = 1``; a float → ``c``).

Linear model (:mod:`.linear`)::

    projector(A) -> P_A = A⁺A                        span_projector(X) -> P_X = X X⁺
    fixed_point(W0, WT, A, X=None, *, A_T=None, a_S=None, a_T=None, Sigma=None)
                                                     -> W∞ = W0 + P_A (WT − W0) P_X
    gd_trajectory(W0, WT, A, X, lr, steps, *, reduction="mean", Sigma=None, ...)
                                                     -> (steps+1, d, n_in), closed form (not simulated);
                                                        X=None, Sigma=E[xxᵀ]: expected iterate under fresh noise
    gradient_flow(W0, WT, A, X, t, ...)              -> W(t)
    gd_stability_limit(A, X=None, *, Sigma=None, reduction="mean")
                                                     -> largest stable lr = 1/(c σ_max(A)² λ_max(XXᵀ or Σ));
                                                        mean reduction: m N/(σ_max(A)² σ_max(X)²)
    transfer_time(A, X=None, fraction=0.99, *, lr=None, Sigma=None)
                                                     -> flow time (lr=None) or GD steps for every mode to close `fraction`
    logit_error_split(C, W0, WT, A, X, x) -> (outside_row_A, outside_span_X)
    exact_transfer_condition(C, A, X=None, *, W0=None, WT=None) -> dict
    oracle_student_features(hS0, hT, A) -> (I − P_A) hS0 + P_A hT          # R1.3
    aux_loss, aux_gradient, noise_second_moment(kind, n_in), loss_scale(reduction, m, N)

Random heads (:mod:`.heads`)::

    transfer_fraction_expected(m, d) -> min(m, d)/d   transfer_fraction_variance(m, d)
    head_overlap(C, A) -> τ = tr(C P_A Cᵀ)/tr(C Cᵀ)     head_overlap_expected(m, d), head_overlap_variance(C, m)
    principal_angles(C, A) -> radians, ascending      expected_transferred_map(m, d, N, n_in)

Compatibility (:mod:`.compat`)::

    is_aux_compatible(A_S, A_T, a_S=None, a_T=None)  is_class_compatible(C_S, C_T, A_S, c_S=None, c_T=None)
    feature_fixed_point(hS0, hT, A_S, A_T=None, a_S=None, a_T=None)        # R1.1
    logit_error_decomposition(hS0, hT, C_S, A_S, C_T=None, A_T=None, ...) -> dict of terms + total

Failure bounds (:mod:`.bounds`)::

    margin_bound(teacher_logits, bound, labels=None) -> dict (guaranteed mask, agreement/accuracy lower bounds)
    logit_error_bound(hS0, hT, C_S, A_S, ...) -> B(x) ≥ ‖y_S − y_T‖_∞
    aux_perturbation_bound(A_S, A_T, hT, a_S=None, a_T=None) -> dict
    aux_perturbation_sigma_critical(m, d, kind="worst"|"typical", *, init_scale=None, rho=1.0)
    aux_perturbation_epsilon(sigma, m, d)           # ε(σ) = σ/σ*
    width_bound(D, m) -> dict   width_logit_error_expected(C, delta, m)

Class-head perturbation (:mod:`.class_perturbation`; C_S = C + E, E i.i.d. N(0, σ²), class head never trains)::

    class_perturbation_probability(logits, features, sigma, target=None, *, bias=False)
                                                     -> Pr[argmax(y + E h) = target] = E_z Π_{j≠c} Φ(Δ_j/(σ‖h‖) + z), exact
    class_perturbation_accuracy(logits, features, labels, sigma, *, bias=False) -> acc(σ)
    class_perturbation_sigma_critical(logits, features, labels, *, bias=False)
                                                     -> dict: sigma_star with acc(σ*) = (acc(0) + 1/K)/2
    class_perturbation_flip_bounds(margin, scale, K) -> dict: lower, equal_margins, union (closed-form bounds)
    noise_budget_bound(N, n) -> dict   noise_budget_error(C, A, W0, WT, X, x)

Kernel form (:mod:`.kernel`)::

    cross_kernel(C, K, A) -> C K Aᵀ     kernel_blocks(J_a, J_b)     linear_body_kernel(x_a, x_b, d)
    ntk_fixed_point_logits(C, A, K_test_train, K_train_train, r0, y0=None)
    ntk_trajectory(C, A, K_test_train, K_train_train, r0, lr, steps, y0=None)
    first_step_alignment(A, J_noise, dw_T, *, c=1.0, lr=1.0)

Parameter-space linear response of the Adam student (:mod:`.response`)::

    mode_response(lam, forcing, steps, lr, beta1=0.9, *, schedule=False, beta2=0.999, path=False)
                                                     -> per-mode displacement under bias-corrected momentum descent
                                                        (Adam with a frozen preconditioner, its own step schedule)
    unit_response(lam, etas, beta1) -> u_T(λ)         schedule_step(acc, rho, t, beta2) -> (acc, scale)
    response_displacement(G, D, target=None, steps, lr, beta1, *, gradient=None, schedule=True)
                                                     -> Δθ_S = D^{1/2}[I − u_T(M)]D^{-1/2}Δ*, M = D^{1/2} G D^{1/2}
    function_target(G, b) -> −G⁺b     reachable_share(G, D, target)     reachable_limit(G, D, target)
    envelope_bound(G, D, target, steps, lr, ...)     -> max_λ|1 − u_T(λ)| ‖P_M D^{-1/2}Δ*‖
    simulate_response(...), stochastic_response(...) batch_second_moment(per_sample, batch)
    kronecker_diagonal(scale) -> (p, q)               kronecker_response(layers, steps, lr, beta1, *, schedule=True)
    first_order_share(linear, actual)                 remainder_ratio(linear, actual)
    relative_margin_certificate(predicted_logits, scale, labels, k) -> dict (guaranteed accuracy)
    segment_margin_certificate(initial_logits, predicted_logits, labels, alpha_min, k) -> dict (the same, allowing
        the predicted change to be too large by up to 1/alpha_min)
    cross_head_target(G_SS, G_ST, delta_T) -> G_SS⁺ G_ST Δw_T    kronecker_cross_target(A_SS, A_ST, dW) -> A_SS⁺ A_ST ΔW

Adam on a fraction of the noise (:mod:`.subsampled`)::

    subsampled_second_moment(batch_mean, per_sample_sq, batch, train_batch)
                                                     -> v̂_B, unbiased for Adam's E[g_B²] from a batch of b < B
    subsampled_coefficients(batch, train_batch) -> (1 + κ, κ): v̂_B = (1 + κ) ḡ_b² − κ mean_i g_i²
    uniform_ibp_weight(x, lo, hi) -> (x − lo)(hi − x)/2: E[f(x)(x − c)] = E[w f'] + Σ_a p(a) w(a)[f]_a
                                                     (:mod:`.integration_by_parts`)

The derivations, assumptions and what each predicts are in ``docs/theory.md``;
``limen derive --list`` lists the registered results.
"""

from .bounds import (aux_perturbation_bound, aux_perturbation_epsilon, aux_perturbation_sigma_critical,
                     logit_error_bound, margin_bound, noise_budget_bound, noise_budget_error, teacher_margin,
                     width_bound, width_logit_error_expected)
from .class_perturbation import (class_perturbation_accuracy, class_perturbation_flip_bounds,
                                 class_perturbation_probability, class_perturbation_sigma_critical)
from .compat import (aux_compatibility_residual, class_compatibility_residual, feature_fixed_point,
                     is_aux_compatible, is_class_compatible, logit_error_decomposition)
from .heads import (expected_transferred_map, head_overlap, head_overlap_expected, head_overlap_variance,
                    principal_angles, projector_entry_moments, transfer_fraction_expected,
                    transfer_fraction_variance)
from .kernel import (cross_kernel, first_step_alignment, kernel_blocks, linear_body_kernel,
                     ntk_fixed_point_logits, ntk_trajectory)
from .linear import (aux_gradient, aux_loss, exact_transfer_condition, fixed_point, gd_contraction,
                     gd_iterate, gd_stability_limit, gd_trajectory, gradient_flow, logit_error_split, loss_scale, mode_rates,
                     noise_second_moment, oracle_student_features, pinv, projector, span_projector, transfer_time)
from .response import (batch_second_moment, cross_head_target, envelope_bound, first_order_share, function_target,
                       kronecker_cross_target, kronecker_diagonal, kronecker_response, mode_response, reachable_limit,
                       reachable_share, relative_margin_certificate, remainder_ratio, response_displacement,
                       schedule_step, segment_margin_certificate, simulate_response, stochastic_response,
                       unit_response)
from .integration_by_parts import uniform_ibp_weight
from .results import CheckReport, Result, get, list_results
from .subsampled import subsampled_coefficients, subsampled_second_moment

__all__ = [
    "CheckReport", "Result", "get", "list_results",
    "projector", "span_projector", "pinv", "fixed_point", "gd_trajectory", "gd_iterate", "gradient_flow", "gd_stability_limit",
    "gd_contraction", "mode_rates", "transfer_time", "logit_error_split", "exact_transfer_condition",
    "oracle_student_features", "aux_loss", "aux_gradient", "noise_second_moment", "loss_scale",
    "transfer_fraction_expected", "transfer_fraction_variance", "projector_entry_moments", "head_overlap",
    "head_overlap_expected", "head_overlap_variance", "principal_angles", "expected_transferred_map",
    "is_aux_compatible", "is_class_compatible", "aux_compatibility_residual", "class_compatibility_residual",
    "feature_fixed_point", "logit_error_decomposition",
    "margin_bound", "teacher_margin", "logit_error_bound", "aux_perturbation_bound", "aux_perturbation_sigma_critical",
    "aux_perturbation_epsilon", "class_perturbation_probability", "class_perturbation_accuracy",
    "class_perturbation_sigma_critical", "class_perturbation_flip_bounds", "width_bound", "width_logit_error_expected", "noise_budget_bound", "noise_budget_error",
    "cross_kernel", "kernel_blocks", "linear_body_kernel", "ntk_fixed_point_logits", "ntk_trajectory",
    "first_step_alignment",
    "mode_response", "unit_response", "schedule_step", "response_displacement", "function_target", "reachable_share",
    "reachable_limit", "envelope_bound", "simulate_response", "stochastic_response", "batch_second_moment",
    "kronecker_diagonal", "kronecker_response", "cross_head_target", "kronecker_cross_target", "first_order_share", "remainder_ratio", "relative_margin_certificate", "segment_margin_certificate",
    "subsampled_coefficients", "subsampled_second_moment", "uniform_ibp_weight",
]
