"""Check plots: level lines told apart, a measured position drawn with its interval, the legend off the data."""

import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg

from limen.verify.checks import plots


@pytest.fixture
def drawn(monkeypatch):
    """The axes of the last figure :func:`plots.curve` saved."""
    seen = {}
    real = plots._save

    def keep(fig, ax, path, **kw):
        seen["ax"] = ax
        return real(fig, ax, path, **kw)

    monkeypatch.setattr(plots, "_save", keep)
    return seen


def _curve(tmp_path, **kw):
    x = [0.0, 0.1, 0.2]
    return plots.curve(tmp_path / "c.png", x, measured={"student": ([0.8, 0.5, 0.2], [0.7, 0.4, 0.1], [0.9, 0.6, 0.3])},
                       predicted={"predicted": (x, [0.8, 0.45, 0.2])}, xlabel="σ", ylabel="acc", title="t", **kw)


def test_level_lines_have_distinct_styles(tmp_path, drawn):
    _curve(tmp_path, hlines={"chance": 0.1, "half-way level": 0.5})
    styles = {ln.get_label(): (ln.get_color(), str(ln.get_linestyle())) for ln in drawn["ax"].lines}
    assert styles["chance"] != styles["half-way level"]


def test_predicted_and_measured_positions_differ_and_the_measured_one_shows_its_interval(tmp_path, drawn):
    _curve(tmp_path, vlines={"predicted σ_mid": 0.09}, vspans={"measured σ_mid": (0.1, 0.08, 0.12)})
    lines = {ln.get_label(): ln for ln in drawn["ax"].lines}
    pred, meas = lines["predicted σ_mid"], lines["measured σ_mid"]
    assert pred.get_linestyle() != meas.get_linestyle() and pred.get_color() != meas.get_color()
    (band,) = drawn["ax"].patches
    x0, x1 = band.get_extents().x0, band.get_extents().x1
    assert x0 < x1  # a shaded [lo, hi], not a line
    _curve(tmp_path, vspans={"not reached": (0.1, 0.08, float("inf"))})
    assert not drawn["ax"].patches  # an unbounded interval is not shaded


def test_legend_outside_leaves_the_axes_free(tmp_path, drawn):
    _curve(tmp_path, hlines={"chance": 0.1}, legend_outside=True)
    ax = drawn["ax"]
    renderer = FigureCanvasAgg(ax.figure).get_renderer()
    assert ax.get_legend().get_window_extent(renderer).x0 >= ax.get_window_extent(renderer).x1
