"""The presentation primitives of refimpl/lab/present.py: what they show, checked cell by cell."""

from __future__ import annotations

import pytest

from refimpl.claims import _base as B
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
