"""The presentation primitives of refimpl/lab/present.py: what they show, checked cell by cell."""

from __future__ import annotations

import pytest

from refimpl.claims import _base as B
from refimpl.lab import figures as F
from refimpl.lab import present as P


def test_regime_names_fields_by_their_symbols_in_order():
    c = B.transfer_base(False)
    text = P.regime(c, ("d", "m", "n_up", "u_norm", "flip_down", "eta"))
    assert text == "d = 600, m = 10, N_1 = 200, |u| = 2, p_2 = 0.1, eta = 1"


def test_regime_takes_labels_and_mappings():
    base = dict(B.TRANSFER_BASE, v_up_norm=1.5, sigma_p_up=0.25, n_test=10000)
    text = P.regime(base, (P.SHARED_V, P.SIGMA_P, ("N_2 (downstream)", "n_down"), "n_test"))
    assert text == "|v_1| = |v_2| = 1.5, sigma_p = 0.25, N_2 (downstream) = 10, n_test = 10000"
    assert P.regime(base, ("granularity", "freeze_inherited")) == (
        "granularity = filter, freeze_inherited = False"
    )


@pytest.mark.parametrize(
    ("value", "text"),
    [(600, "600"), (2.0, "2"), (0.1, "0.1"), (1e-3, "0.001"), (2.5e-7, "2.5e-07"), ("x", "x")],
)
def test_fmt_value(value, text):
    assert P.fmt_value(value) == text


def test_regime_reads_what_is_missing_as_an_error():
    with pytest.raises(AttributeError):
        P.regime(B.transfer_base(True), ("no_such_field",))
    with pytest.raises(KeyError):
        P.regime({}, ("d",))


def test_holds_and_the_test_line():
    assert P.holds(True) == "holds" and P.holds(False) == "does NOT hold"
    assert P.holds(0, "ok", "NOT ok") == "NOT ok" and P.holds(1, "ok", "NOT ok") == "ok"
    assert P.test_line("(a) trend", "rho = -0.5, p = 0.01", True) == (
        "- (a) trend: rho = -0.5, p = 0.01 — holds"
    )
    assert P.test_line("(b) tail", "p = 0.3", False) == "- (b) tail: p = 0.3 — does NOT hold"
    assert P.test_line("x", "y", False, "lies", "does NOT lie") == "- x: y — does NOT lie"


# ----------------------------------------------------------------------
# figures of curves over x (refimpl/lab/figures.py: Curve, Panel, panels_figure)

needs_matplotlib = pytest.mark.skipif(not F.available(), reason=F.INSTALL_HINT)


def _panel():
    curves = [
        F.Curve([0.3, 0.2, 0.1], "mean", "C0o-", se=[0.01, 0.02, 0.03]),
        F.Curve([0.5], "remedy", "C1s", x=[1.05], style={"mfc": "none"}),
    ]
    hline = {"y": 0.0, "color": "k", "lw": 0.8, "label": "zero"}
    return F.Panel(
        curves, "title", "alpha", "error", [0.0, 0.5, 1.0], [hline], {"yscale": "log"}, {"ms": 3}
    )


@needs_matplotlib
def test_draw_panel_draws_the_curves_bands_lines_and_labels():
    fig, ax = F.subplots()
    F.draw_panel(ax, _panel())
    lines = ax.get_lines()
    assert [ln.get_label() for ln in lines] == ["mean", "remedy", "zero"]
    mean, remedy, zero = lines
    assert list(mean.get_xdata()) == [0.0, 0.5, 1.0] and list(mean.get_ydata()) == [0.3, 0.2, 0.1]
    assert (mean.get_marker(), mean.get_linestyle(), mean.get_markersize()) == ("o", "-", 3)
    assert list(remedy.get_xdata()) == [1.05] and remedy.get_linestyle() == "None"
    assert remedy.get_markerfacecolor() == "none" and remedy.get_marker() == "s"
    assert list(zero.get_ydata()) == [0.0, 0.0]
    band = ax.collections[0].get_paths()[0].vertices[:, 1]
    assert band.min() == pytest.approx(0.07) and band.max() == pytest.approx(0.31)
    assert ax.get_yscale() == "log" and ax.get_title() == "title"
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("alpha", "error")
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["mean", "remedy", "zero"]


@needs_matplotlib
def test_draw_panel_without_legend_or_labels():
    fig, ax = F.subplots()
    F.draw_panel(ax, F.Panel([F.Curve([1, 2], x=[0, 1])], legend=None))
    assert ax.get_legend() is None and ax.get_title() == "" and ax.get_xlabel() == ""
    assert ax.get_lines()[0].get_linestyle() == "-"


@needs_matplotlib
def test_panels_figure_lays_out_the_panels_row_by_row(tmp_path, monkeypatch):
    seen = {}
    real_save = F.save

    def save(fig, path, dpi=120):
        seen["fig"], seen["dpi"] = fig, dpi
        return real_save(fig, path, dpi)

    monkeypatch.setattr(F, "save", save)
    panels = [F.Panel([F.Curve([k, k + 1], f"c{k}")], f"p{k}", x=[0, 1]) for k in range(3)]
    out = F.panels_figure(tmp_path / "f.png", panels, ncols=2, suptitle="all", dpi=90)
    assert out == tmp_path / "f.png" and out.stat().st_size > 0
    fig = seen["fig"]
    assert seen["dpi"] == 90 and tuple(fig.get_size_inches()) == (10.0, 8.0)
    axes = fig.axes
    assert [a.get_title() for a in axes] == ["p0", "p1", "p2", ""]
    assert [a.get_visible() for a in axes] == [True, True, True, False]
    assert axes[2].get_subplotspec().rowspan.start == 1  # the third panel starts row 2
    assert fig._suptitle.get_text() == "all"
