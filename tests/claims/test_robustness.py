"""robustness: its declared protocol (the variants of both sizes), measure's shape, the pure
``decide(size, measurements)`` on hand-made per-seed errors, ``present``, and the registry
examples.

Expected p-values come from closed forms, not from running the code:

- Wilcoxon signed-rank, exact, n positive differences: p = 1/2^n; with only the ranks R
  positive, p = P(W+ >= sum R) counted over the 2^n sign patterns (:func:`upper_tail`);
- Page's L test, exact, b perfectly ordered blocks over k points: p = (1/k!)^b; with b = 30
  blocks (normal approximation) over k = 3: L = 14 b, mean 12 b, variance 2 b, z = sqrt(2 b).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from claim_examples import RecordingSweep

from refimpl.claims import _base as B
from refimpl.claims import robustness as RB
from refimpl.lab import stats as S
from refimpl.lab.claim import Outcome, Size, Table

NAN = float("nan")
N10 = 10
US3 = [0.0, 1.0, 2.0]


def approx(x, rel=1e-9, abs=1e-15):
    return pytest.approx(x, rel=rel, abs=abs)


def page_perfect(k, b):
    return (1 / math.factorial(k)) ** b


def norm_sf(z):
    return 0.5 * math.erfc(z / math.sqrt(2))


def distinct(n, offset=0.0):
    """n values offset + (1, 2, ..., n) / 1024: distinct magnitudes."""
    return offset + np.arange(1, n + 1) / 1024


def rob(u0, u1, u2):
    """One variant: err_scratch 1/4, err_transfer 1/4 - gain at each |u| (gain arrays of 10
    seeds)."""
    es = np.full((3, N10), 0.25)
    return 0.25 - np.stack([u0, u1, u2]), es


def band(b, sign=1.0):
    """Gains of band b: sign * (10 b + r) / 1024, r = 1..10 (bands never tie)."""
    return sign * distinct(N10, offset=10 * b / 1024)


def rising(b, u0):
    """A variant whose gain is u0 at |u| = 0, 1/8 + band b at 1, 1/4 + band b at 2: every seed
    strictly rising (|u0| < 1/8)."""
    return rob(u0, 1 / 8 + band(b), 1 / 4 + band(b))


def upper_tail(n, w):
    """Exact P(W+ >= w) of the signed-rank statistic over n ranks: subsets of {1..n} with sum
    >= w, counted by dynamic programming, over 2^n."""
    counts = np.zeros(n * (n + 1) // 2 + 1)
    counts[0] = 1
    for k in range(1, n + 1):
        counts[k:] = counts[k:] + counts[:-k].copy()
    return counts[w:].sum() / 2.0**n


def decide(names, et, es, reversed_):
    """``decide`` on variants ``names`` over |u| = (0, 1, 2), errors (variants, 3, seeds)."""
    size = Size({n: [] for n in names}, et.shape[-1], us=US3, reversed=reversed_)
    return RB.decide(size, {"err_transfer": et, "err_scratch": es})


# ----------------------------------------------------------------------
# the protocol, declared as data
def test_protocol_is_declared_with_its_seed_stream_and_disclosure():
    p = RB.PROTOCOL
    assert p.name == "robustness" and p.source == "hypothesis" and p.fixed == "2026-11-29"
    assert p.salt == "robustness-v2" and p.common == ()  # independent seeds everywhere
    assert p.hash_scheme1 == "eeed9e964800"  # the committed full-size hash
    assert "0.01" in p.pass_rule and "pooled" in p.statistic
    d, engine = p.disclosures
    assert d.date == "2026-11-29" and "->" in d.change and d.earlier.startswith("FAIL")
    text = json.dumps(d.to_dict())
    assert "audit" not in text and "issue" not in text and "-0.0856" in text
    assert "batched three-stage path" in engine.change and p.rules["engine"] == B.ENGINE_RULE
    assert "+0.2000, +0.2034, +0.2043" in engine.earlier and "20 of 21" in engine.earlier
    json.dumps(p.to_dict(), allow_nan=False)


def test_the_variants_and_the_predicted_reversal_with_correlated_signals_only():
    full, quick = RB.PROTOCOL.full, RB.PROTOCOL.quick
    assert full.reversed == quick.reversed == {"cos(v_1, v_2) = 0.5": "gain"}
    assert full.seeds == 40 and quick.seeds == 3 and full.us == quick.us == US3
    assert list(full.configs) == list(quick.configs) and len(full.configs) == 7
    eq = full.configs[RB.EQUAL_LOSS]
    assert {(c.epsilon, c.steps_down) for c in eq} == {(B.EPSILON, 2000)}
    assert {(c.epsilon, c.steps_down) for c in quick.configs[RB.EQUAL_LOSS]} == {(1e-3, 600)}
    small = full.configs["eta = 0.1, 10x steps"]
    assert {(c.eta, c.steps_up, c.steps_down) for c in small} == {(0.1, 2000, 2000)}
    q_small = quick.configs["eta = 0.1, 10x steps"]
    assert {(c.eta, c.steps_up, c.steps_down) for c in q_small} == {(0.1, 600, 600)}
    assert {c.v_cos for c in full.configs["cos(v_1, v_2) = 0.5"]} == {0.5}
    base = full.configs[RB.BASE]
    assert [c.u_norm for c in base] == US3 and base[-1].to_dict() == full.base
    assert (base[0].layout, base[0].granularity, base[0].flip_down) == ("joint", "filter", 0.1)
    flat = [json.dumps(c.to_dict(), sort_keys=True) for g in full.configs.values() for c in g]
    assert len(set(flat)) == len(flat) == 21


def test_measure_is_one_sweep_shaped_variants_u_seeds():
    size = RB.PROTOCOL.quick
    sweep = RecordingSweep(size.seeds, scale=10.0)  # item index * 10 + seed
    m = RB.measure(size, sweep)
    ((configs, kwargs),) = sweep.calls
    assert configs == [c for g in size.configs.values() for c in g]
    assert kwargs["measure"] == "outcomes_batched" and "common" not in kwargs
    assert set(m) == set(RB.METRICS) and m["err_transfer"].shape == (7, 3, 3)
    assert m["loss_down"][5, 1, 2] == (5 * 3 + 1) * 10 + 2  # variant, |u|, seed


# ----------------------------------------------------------------------
# decide
def test_findings_are_separate_and_the_verdict_pooled():
    base = rising(0, band(1, -1.0))  # negative transfer at |u| = 0
    alternate = np.array([1.0, -1.0] * 5)
    entry = rising(1, band(0) * alternate)  # |u| = 0: no effect
    cos = rising(2, band(2))  # the reversal: a gain at |u| = 0
    names = ["base", "entry", "cos"]
    et = np.stack([base[0], entry[0], cos[0]])
    es = np.stack([base[1], entry[1], cos[1]])
    d = decide(names, et, es, {"cos": "gain"})
    res = d["results"]
    assert res["base"]["at |u| = 0"]["p"] == approx(2.0**-10)
    assert res["base"]["at |u| = 0"]["status"] == "detected"
    # entry: et - es = -gain positive at r = 2, 4, ..., 10: W+ = 30 of 55
    assert res["entry"]["at |u| = 0"]["p"] == approx(upper_tail(10, 30))
    assert res["entry"]["at |u| = 0"]["status"] == "not detected"  # not "lost"
    assert res["cos"]["prediction_u0"] == "gain"
    assert res["cos"]["at |u| = 0"]["p"] == approx(2.0**-10)
    assert res["cos"]["at |u| = 0"]["status"] == "detected"
    for n in names:
        assert res[n]["gain at |u| = 2"]["p"] == approx(2.0**-10)
        assert res[n]["gain grows with |u|"]["p"] == approx(page_perfect(3, N10))
    pooled = d["pooled"]
    assert pooled["gain at |u| = 2"]["p"] == approx(2.0**-30)  # 3 variants x 10 seeds
    assert pooled["gain grows with |u|"]["p"] == approx(norm_sf(math.sqrt(60)), rel=1e-6)
    assert pooled["negative transfer at |u| = 0"]["variants"] == ["base", "entry"]
    # pooled: base's 10 positive differences are ranks 11..20 (155), entry's positive ones
    # ranks 2, 4, ..., 10 (30): W+ = 185 over 20 ranks
    assert pooled["negative transfer at |u| = 0"]["p"] == approx(upper_tail(20, 185))
    assert upper_tail(20, 185) < 0.01
    assert pooled["gain at |u| = 0 (reversal)"]["variants"] == ["cos"]
    assert pooled["gain at |u| = 0 (reversal)"]["p"] == approx(2.0**-10)
    # entry's non-detection does not fail the verdict: no AND across variants
    assert all(t["holds"] for t in pooled.values())
    assert d["verdict"] == "PASS" and d["missing"] == 0


def test_opposite_effect_and_a_failing_pooled_prediction():
    # predicted negative transfer at |u| = 0 but transfer is better in every seed
    better = rising(0, band(0))
    d = decide(["v"], better[0][None], better[1][None], {})
    r = d["results"]["v"]["at |u| = 0"]
    assert r["p"] == 1.0 and r["p_opposite"] == approx(2.0**-10) and r["status"] == "opposite"
    assert not d["pooled"]["negative transfer at |u| = 0"]["holds"]
    assert "gain at |u| = 0 (reversal)" not in d["pooled"]  # no variant predicts it
    assert d["verdict"] == "FAIL"


def test_missing_value_fails_and_is_counted():
    et, es = rising(0, band(1, -1.0))
    et[1, 4] = NAN  # |u| = 1: only the growth uses it
    d = decide(["v"], et[None], es[None], {})
    assert d["results"]["v"]["gain at |u| = 2"]["status"] == "detected"
    assert math.isnan(d["results"]["v"]["gain grows with |u|"]["p"])
    assert d["missing"] == 1 and d["verdict"] == "FAIL"
    size = Size({"v": []}, N10, us=US3, reversed={})
    lists = {"err_transfer": et[None].tolist(), "err_scratch": es[None].tolist()}
    lists["err_transfer"][0][1][4] = None  # None: missing too
    assert RB.decide(size, lists)["missing"] == 1


# ----------------------------------------------------------------------
# present
def test_present_reports_pooled_tests_findings_and_stalls():
    size = RB.PROTOCOL.full
    m = examples(size)["PASS"]
    eq = list(size.configs).index(RB.EQUAL_LOSS)
    m["loss_down"][eq, 2, :5] = 0.01  # five transfer runs above the loss target at |u| = 2
    out = RB.present(size, m, RB.decide(size, m))
    assert isinstance(out, Outcome)
    # gain at |u| = 2: 1/8 + (r + 1)/1024 over 7 x 40 pairs; median 1/8 + 20.5/1024
    assert out.statistic.startswith("pooled over the variants: gain at |u| = 2: +0.1450, p < 1e")
    assert "per variant: 21 of 21 predictions detected; 40 seeds per point" in out.statistic
    (csv,) = [t for t in out.sections if isinstance(t, Table) and t.name]
    assert csv.name == "robustness" and len(csv.rows) == 21
    rows = [dict(zip(csv.header, r, strict=True)) for r in csv.rows]
    assert rows[0]["variant"] == RB.BASE and rows[0]["stalled_transfer"] is None
    assert rows[2]["gain_median"] == approx(1 / 8 + 20.5 / 1024)
    assert rows[2]["err_scratch_mean"] == 0.25 and rows[2]["fail_scratch"] == 1.0  # 0.25 > 0.2
    loss = rows[3 * eq + 2]
    assert loss["variant"] == RB.EQUAL_LOSS and loss["stalled_transfer"] == 5
    assert loss["stalled_scratch"] == 0
    pooled, findings, outcomes = [t for t in out.sections if isinstance(t, Table) and t.show]
    assert [r[-1] for r in pooled.rows] == ["yes"] * 4
    assert all(r[1].endswith(": detected") for r in findings.rows)
    assert outcomes.rows[3 * eq + 2][-1] == "5 / 0 of 40"
    assert outcomes.rows[0][-1] == "—"
    assert [f["status"] for f in out.data["findings"]] == ["detected"] * 21


# ----------------------------------------------------------------------
# registry examples (tests/claims/test_declarations.py)
def _measurements(size, sign):
    """Every metric measure() returns: err_scratch 1/4 and the gain err_scratch -
    err_transfer = sign x (j / 16 + (r + 1) / 1024) at |u| index j >= 1 and seed r, and at
    |u| = 0 sign x (r + 1) / 1024 toward the variant's prediction (transfer worse, or better
    where a gain is predicted). For sign = +1 every prediction holds in every seed."""
    names, k, n = list(size.configs), len(size.us), size.seeds
    r = np.arange(1, n + 1)[None, None, :] / 1024
    gain = np.arange(k)[None, :, None] / 16 + r + np.zeros((len(names), 1, 1))
    toward = [1.0 if size.reversed.get(v) == "gain" else -1.0 for v in names]
    gain[:, 0, :] = np.array(toward)[:, None] * r[0, 0]
    es = np.full(gain.shape, 0.25)
    loss = np.full(gain.shape, 1e-4)
    return {
        "err_transfer": es - sign * gain,
        "err_scratch": es,
        "loss_down": loss,
        "loss_scratch": loss.copy(),
    }


def examples(size):
    """FAIL: every effect reversed; PASS where the seeds allow the smallest pooled test (the
    reversal, over the variants predicting it) to reach the level: 2^-(pairs) < 0.01."""
    out = {"FAIL": _measurements(size, -1.0)}
    pairs = size.seeds * sum(1 for v in size.configs if size.reversed.get(v) == "gain")
    if 2.0**-pairs < S.SIGNIFICANCE:
        out["PASS"] = _measurements(size, 1.0)
    return out
