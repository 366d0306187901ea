"""Class-head perturbation: exact flip probability, accuracy curve and σ* against Monte Carlo on random heads."""

import math

import numpy as np
import pytest
from scipy.special import ndtr

from limen import theory


def _mc_hits(rng, y, h, labels, sigma, R, bias=False):
    """Indicator (R, B) that argmax(y + E h (+ e)) = label for R random Gaussian class-head perturbations E."""
    K, d = y.shape[1], h.shape[1]
    E = sigma * rng.standard_normal((R, K, d))
    g = np.einsum("rkd,bd->rbk", E, h) + (sigma * rng.standard_normal((R, 1, K)) if bias else 0.0)
    return (np.argmax(y[None] + g, axis=2) == labels).astype(np.float64)


def _binomial_z(hits, p):
    R = hits.shape[0]
    return np.abs(hits.mean(axis=0) - p) / np.sqrt(np.maximum(p * (1 - p), 1.0 / R) / R)


@pytest.mark.parametrize("K,d,sigma,bias", [(2, 4, 0.5, False), (10, 32, 0.03, False), (10, 32, 0.08, True)])
def test_probability_matches_monte_carlo(K, d, sigma, bias):
    rng = np.random.default_rng(K * 100 + d)
    y, h = rng.standard_normal((16, K)), rng.standard_normal((16, d))
    labels = rng.integers(0, K, 16)
    hits = _mc_hits(rng, y, h, labels, sigma, 6000, bias)
    p = theory.class_perturbation_probability(y, h, sigma, labels, bias=bias)
    assert np.max(_binomial_z(hits, p)) < 4.5
    acc = theory.class_perturbation_accuracy(y, h, labels, sigma, bias=bias)
    per_draw = hits.mean(axis=1)
    assert abs(per_draw.mean() - acc) < 4.5 * per_draw.std(ddof=1) / math.sqrt(len(per_draw))


def test_monte_carlo_comparison_can_fail():
    """Dropping the bias's variance (r = ‖h‖ instead of √(‖h‖²+1)) with tiny features is detected."""
    rng = np.random.default_rng(3)
    y, h = rng.standard_normal((16, 10)), 0.3 * rng.standard_normal((16, 8))
    labels = np.argmax(y, axis=1)
    hits = _mc_hits(rng, y, h, labels, 0.5, 6000, bias=True)
    wrong = theory.class_perturbation_probability(y, h, 0.5, labels, bias=False)
    assert np.max(_binomial_z(hits, wrong)) > 4.5


def test_two_classes_closed_form():
    rng = np.random.default_rng(1)
    y, h = rng.standard_normal((20, 2)), rng.standard_normal((20, 5))
    s = 0.7 * np.linalg.norm(h, axis=1)
    gamma = np.abs(y[:, 0] - y[:, 1])
    keep = theory.class_perturbation_probability(y, h, 0.7)
    assert np.allclose(keep, ndtr(gamma / (math.sqrt(2) * s)), atol=1e-13, rtol=0)


def test_curve_limits_and_sigma_star():
    rng = np.random.default_rng(2)
    y, h = 3 * rng.standard_normal((200, 10)), rng.standard_normal((200, 16))
    labels = np.where(rng.random(200) < 0.9, np.argmax(y, axis=1), rng.integers(0, 10, 200))
    curve = theory.class_perturbation_accuracy(y, h, labels, np.array([0.0, 1e-3, 1e12]))
    assert curve.shape == (3,)
    assert curve[0] == pytest.approx(np.mean(np.argmax(y, 1) == labels), abs=0)
    assert curve[2] == pytest.approx(0.1, abs=1e-9)
    st = theory.class_perturbation_sigma_critical(y, h, labels)
    assert theory.class_perturbation_accuracy(y, h, labels, st["sigma_star"]) == pytest.approx(st["target"], abs=1e-10)
    # Monte Carlo accuracy at σ* lies within its CI of the predicted midpoint
    per_draw = _mc_hits(rng, y, h, labels, st["sigma_star"], 1500).mean(axis=1)
    assert abs(per_draw.mean() - st["target"]) < 4.5 * per_draw.std(ddof=1) / math.sqrt(len(per_draw))
    # σ* scales inversely with the feature norm and linearly with the logit scale
    assert theory.class_perturbation_sigma_critical(y, 2 * h, labels)["sigma_star"] == pytest.approx(st["sigma_star"] / 2, rel=1e-8)
    assert theory.class_perturbation_sigma_critical(3 * y, h, labels)["sigma_star"] == pytest.approx(3 * st["sigma_star"], rel=1e-8)
    # at/below chance there is no midpoint to find
    assert math.isnan(theory.class_perturbation_sigma_critical(y, h, (np.argmax(y, 1) + 1) % 10)["sigma_star"])


def test_flip_bounds_bracket_exact():
    rng = np.random.default_rng(4)
    y, h = rng.standard_normal((50, 6)), rng.standard_normal((50, 3))
    srt = np.sort(y, axis=1)
    for sigma in (0.05, 0.3, 2.0):
        flip = 1 - theory.class_perturbation_probability(y, h, sigma)
        b = theory.class_perturbation_flip_bounds(srt[:, -1] - srt[:, -2], sigma * np.linalg.norm(h, axis=1), 6)
        assert np.all(b["lower"] <= flip + 1e-12)
        assert np.all(flip <= b["equal_margins"] + 1e-12)
        assert np.all(b["equal_margins"] <= b["union"] + 1e-12)


def test_registry_evaluate():
    r = theory.get("class-perturbation-sigma-critical")
    rng = np.random.default_rng(5)
    y, h = rng.standard_normal((30, 4)), rng.standard_normal((30, 5))
    lab = np.argmax(y, axis=1)
    assert r.evaluate(logits=y, features=h, labels=lab)["sigma_star"] == \
        theory.class_perturbation_sigma_critical(y, h, lab)["sigma_star"]
    assert r.evaluate(logits=y, features=h, labels=lab, sigma=0.2) == theory.class_perturbation_accuracy(y, h, lab, 0.2)
    assert "Phi" in r.latex()


@pytest.mark.parametrize("kwargs,match", [
    (dict(logits=np.zeros((3, 4)), features=np.zeros((2, 5)), sigma=0.1), "share B"),
    (dict(logits=np.zeros((3, 1)), features=np.zeros((3, 5)), sigma=0.1), "K ≥ 2"),
    (dict(logits=np.zeros((3, 4)), features=np.ones((3, 5)), sigma=-1.0), "sigma"),
    (dict(logits=np.zeros((3, 4)), features=np.ones((3, 5)), sigma=0.1, target=[0, 1, 4]), "class indices"),
])
def test_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        theory.class_perturbation_probability(**kwargs)
