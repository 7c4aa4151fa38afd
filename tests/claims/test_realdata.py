"""The realdata claim (refimpl/claims/realdata.py) and its command line
(refimpl/cli/realdata.py): the pure verdict rule on hand-made inputs, the
tests behind it, an end-to-end run, resuming after an interruption through the
sweep cache, outputs that are never a mix of two runs, and one-line errors for
user mistakes."""

import csv
import json
import sys

import numpy as np
import pytest

from refimpl.claims import realdata as C
from refimpl.cli import main
from refimpl.cli import realdata as CLI
from refimpl.errors import ConfigError
from refimpl.lab import image_experiment as E
from refimpl.lab import images as I
from refimpl.lab.claim import SOURCES, run_claim
from refimpl.lab.figures import available
from refimpl.lab.stats import SIGNIFICANCE


# ----------------------------------------------------------------------
# judge(): the verdict rule, on hand-made test numbers
def _t(key, sign, effect, p, paper=True):
    return {"key": key, "paper": paper, "sign": sign, "effect": effect, "p": p}


def test_judge_a_claim_holds_with_the_predicted_sign_below_the_level():
    d = C.judge([_t("up", +1, 0.4, 0.001), _t("down", -1, -0.2, 0.009)])
    assert [c["verdict"] for c in d["claims"]] == ["PASS", "PASS"]
    assert d["verdict"] == "PASS" and d["held"] == 2 and d["paper"] == 2 and d["failed"] == []


@pytest.mark.parametrize(
    "test",
    [
        _t("k", +1, -0.4, 0.001),  # wrong sign, however small p
        _t("k", -1, 0.2, 1e-9),
        _t("k", +1, 0.4, SIGNIFICANCE),  # p must be strictly below the level
        _t("k", +1, 0.4, 0.02),
        _t("k", +1, 0.0, 0.0),  # no effect
        _t("k", +1, 0.4, float("nan")),  # missing values make p NaN
        _t("k", +1, float("nan"), 0.001),
    ],
)
def test_judge_fails_a_claim(test):
    d = C.judge([test])
    assert d["claims"][0]["verdict"] == "FAIL"
    assert d["verdict"] == "FAIL" and d["failed"] == ["k"] and d["held"] == 0


def test_judge_only_paper_claims_set_the_verdict():
    d = C.judge([_t("a", +1, 0.3, 0.001), _t("extra", -1, 0.3, 0.5, paper=False)])
    assert d["verdict"] == "PASS" and d["paper"] == 1
    assert d["claims"][1]["verdict"] == "FAIL"  # reported, not decisive
    d = C.judge([_t("a", +1, 0.3, 0.001), _t("b", +1, 0.3, 0.2)])
    assert d["verdict"] == "FAIL" and d["failed"] == ["b"] and d["held"] == 1
    nothing = C.judge([_t("extra", +1, 0.3, 0.001, paper=False)])
    assert nothing["verdict"] == "FAIL"  # nothing tested
    assert C.judge([_t("a", +1, 0.3, 0.03)], significance=0.05)["verdict"] == "PASS"


def test_judge_counts_missing_values_of_paper_claims():
    d = C.judge([dict(_t("a", +1, 0.3, 0.001), n_missing=2), dict(_t("x", +1, 0.3, 0.001, False))])
    assert d["missing"] == 2 and d["verdict"] == "FAIL" and d["verdict_tests"] == "PASS"


def test_judge_holm_over_the_paper_claims_pass():
    """Eight paper claims, p = 1e-6 (six), 0.004, 0.009. Holm at 0.01, by hand:
    sorted, the k-th smallest times (9 - k), then the running maximum: the six
    1e-6 give 8e-6, 7e-6, ..., 3e-6, all raised to 8e-6; 0.004 x 2 = 0.008;
    0.009 x 1 = 0.009: all < 0.01, 8 of 8 hold: PASS."""
    ps = [1e-6] * 6 + [0.004, 0.009]
    d = C.judge([_t(f"k{i}", +1, 0.1, p) for i, p in enumerate(ps)])
    assert d["verdict"] == "PASS" and d["held"] == 8 and d["signs"] == 8
    holm = [c["p_holm"] for c in d["claims"]]
    assert holm[0] == pytest.approx(8e-6) and holm[6] == pytest.approx(0.008)
    assert holm[7] == pytest.approx(0.009)


def test_judge_holm_over_the_paper_claims_fail():
    """p = 1e-6 (six), 0.006, 0.009, each below 0.01 on its own (v1's rule: PASS).
    Holm by hand: 0.006 x 2 = 0.012; 0.009 x 1 = 0.009, raised to the running
    maximum 0.012: both >= 0.01, 6 of 8 hold: FAIL. A non-paper claim stays out of
    the family (p_holm None) and out of the verdict."""
    tests = [_t(f"k{i}", +1, 0.1, p) for i, p in enumerate([1e-6] * 6 + [0.006, 0.009])]
    d = C.judge([*tests, _t("extra", +1, 0.1, 0.001, paper=False)])
    assert d["verdict"] == "FAIL" and d["held"] == 6 and d["failed"] == ["k6", "k7"]
    assert [c["p_holm"] for c in d["claims"][6:]] == [pytest.approx(0.012)] * 2 + [None]
    assert d["claims"][8]["verdict"] == "PASS" and d["signs"] == 8 and d["paper"] == 8


# ----------------------------------------------------------------------
# decide() on rows made by hand (4 seeds, two values per sweep)
X2 = dict(alpha=[0.0, 1.0], n_down=[8, 16], n_up=[20, 40], flip_up=[0.0, 0.4])
E4 = (-0.001, -0.001, 0.001, 0.001)  # per seed: mean 0, SD sqrt(4e-6 / 3) = 0.0011547
FLIP_FAIL = (0.04, 0.04, -0.04, -0.04)  # gain at flip_up = 0.4, seeds 0-3


def _hand_rows(flip=None):
    """Gain (transfer - scratch, scratch 0.8) of seed s: alpha = 0: 0; alpha = 1:
    -0.04 / +0.04 / +0.08 on none / half / same, + E4[s]; N_1 = 20: 0, 40: 0.04 +
    E4[s]; flip_up = 0: 0.04, 0.4: E4[s] (or ``flip[s]``); N_2 = 8: 0.04, 16:
    0.04 + E4[s]."""
    size = C.image_size(E.ImageConfig(), 4, X2)
    top = {"none": -0.04, "half": 0.04, "same": 0.08}
    gains = {("n_up", 20): 0.0, ("n_up", 40): 0.04, ("flip_up", 0.0): 0.04}
    gains.update({("flip_up", 0.4): 0.0, ("n_down", 8): 0.04, ("n_down", 16): 0.04})
    fixed = {("n_up", 20), ("flip_up", 0.0), ("n_down", 8)}
    points = [("alpha", lv, c) for lv, grid in size.configs["alpha"].items() for c in grid]
    points += [(k, "default", c) for k in ("n_down", "n_up", "flip_up") for c in size.configs[k]]
    rows = []
    for s, e in enumerate(E4):
        for sweep, level, c in points:
            x = getattr(c, sweep)
            if sweep == "alpha":
                g = 0.0 if x == 0 else top[level] + e
            elif sweep == "flip_up" and x == 0.4 and flip is not None:
                g = flip[s]
            else:
                g = gains[(sweep, x)] + (0.0 if (sweep, x) in fixed else e)
            row = {k: getattr(c, k) for k in ("alpha", "n_up", "n_down", "flip_up")}
            row.update(sweep=sweep, level=level, replicate=s, seed=s, gain=g)
            rows.append(dict(row, acc_scratch=0.8, acc_transfer=0.8 + g, loss_up=0.1))
    return size, rows


def test_decide_hand_made_pass():
    """Every paired difference is c + E4[s] (SE 0.0011547 / 2 = 0.00057735): alpha_same
    c = +0.08 (t = 80 sqrt 3), the other six two-point analogues |c| = 0.04 (t = 40
    sqrt 3), the predicted sign. One-sided p of t with 3 df, t = x sqrt 3:
    1/2 - (x / (1 + x^2) + arctan x) / pi ~ 2 / (3 pi x^3): 4.1e-7 and 3.3e-6.
    shared: none < half < same in all 4 seeds, Page's exact p = (1/3!)^4 = 1/1296 =
    7.716e-4, rho = 1 in every seed. Holm: shared is the largest p, x 1 = 7.716e-4
    < 0.01, so all 8 hold: PASS. transfer_helps: mean gain 0.04, 95% interval
    0.04 -+ t(0.975, 3) 0.00057735 = 0.04 -+ 3.18245 x 0.00057735 = [0.038163,
    0.041837], median 0.04. n_down (not a paper claim): mean difference 0, p = 0.5."""
    size, rows = _hand_rows()
    d = C.decide(size, {"rows": rows})
    assert d["verdict"] == "PASS" and d["held"] == d["paper"] == d["signs"] == 8
    c = {x["key"]: x for x in d["claims"]}
    th = c["transfer_helps"]
    assert th["effect"] == pytest.approx(0.04) and th["diff_median"] == pytest.approx(0.04)
    assert th["diff_ci"] == pytest.approx([0.038163, 0.041837], abs=1e-6)
    assert th["p"] == pytest.approx(3.3e-6, rel=0.02)
    assert c["alpha_same"]["p"] == pytest.approx(4.14e-7, rel=0.02)
    assert c["flip_up"]["effect"] == pytest.approx(-0.04) and c["flip_up"]["p"] < 1e-5
    assert c["shared"]["p"] == c["shared"]["p_holm"] == pytest.approx(1 / 1296)
    assert c["shared"]["effect"] == 1.0 and c["shared"]["rho_ci"] == pytest.approx([1.0, 1.0])
    assert c["n_down"]["p"] == pytest.approx(0.5) and c["n_down"]["p_holm"] is None


def test_decide_hand_made_fail():
    """As the PASS rows, but the gain at flip_up = 0.4 is FLIP_FAIL: differences
    (0, 0, -0.08, -0.08), mean -0.04 (the predicted sign), SD sqrt(4 x 0.0016 / 3) =
    0.046188, SE 0.023094, t = -sqrt 3: p = 1/4 - 1/(2 pi) = 0.090845 (3 df), the
    largest p, so Holm leaves it at 0.090845 >= 0.01: flip_up does not hold, 7 of 8:
    FAIL. shared moves up one Holm rank: 2 x 1/1296 = 1.543e-3. flip_up's 95%
    interval: -0.04 -+ 3.18245 x 0.023094 = [-0.113496, +0.033496]; median -0.04."""
    size, rows = _hand_rows(flip=FLIP_FAIL)
    d = C.decide(size, {"rows": rows})
    assert d["verdict"] == "FAIL" and d["failed"] == ["flip_up"] and d["held"] == 7
    assert d["signs"] == 8
    c = {x["key"]: x for x in d["claims"]}
    fl = c["flip_up"]
    assert fl["p"] == fl["p_holm"] == pytest.approx(0.090845, abs=1e-6)
    assert fl["diff_ci"] == pytest.approx([-0.113496, 0.033496], abs=1e-6)
    assert fl["effect"] == pytest.approx(-0.04) and fl["diff_median"] == pytest.approx(-0.04)
    assert c["shared"]["p_holm"] == pytest.approx(2 / 1296)


# ----------------------------------------------------------------------
# decide(): every test of a size on hand-made rows
X = dict(alpha=[0.0, 0.5, 1.0], n_down=[8, 16, 32], n_up=[20, 40, 80], flip_up=[0.0, 0.2, 0.4])
SIZE = C.image_size(E.ImageConfig(), 12, X)
SLOPE = {"none": -0.05, "half": 0.05, "same": 0.1}


def _gain(sweep, level, x, flip_sign=-1):
    if sweep == "alpha":
        return SLOPE[level] * x
    return {"n_up": 0.0005 * x, "flip_up": 0.05 + flip_sign * 0.1 * x, "n_down": 0.05 - 0.001 * x}[
        sweep
    ]


def _size_rows(size, gain=_gain, seeds=12, noise=0.005):
    rng = np.random.default_rng(0)
    cfgs = [("alpha", lv, c) for lv, grid in size.configs["alpha"].items() for c in grid]
    cfgs += [(s, "default", c) for s in ("n_down", "n_up", "flip_up") for c in size.configs[s]]
    rows = []
    for s in range(seeds):
        for sweep, level, c in cfgs:
            g = gain(sweep, level, getattr(c, sweep)) + noise * rng.standard_normal()
            row = {k: getattr(c, k) for k in ("alpha", "n_up", "n_down", "flip_up")}
            row.update(sweep=sweep, level=level, replicate=s, seed=s, gain=g, loss_up=0.1)
            rows.append(dict(row, acc_scratch=0.8, acc_transfer=0.8 + g))
    return rows


def test_decide_pass_on_rows_that_follow_the_paper():
    d = C.decide(SIZE, {"rows": _size_rows(SIZE)})
    assert d["verdict"] == d["verdict_tests"] == "PASS" and d["missing"] == 0
    assert [c["key"] for c in d["claims"]] == list(C.TESTS)
    assert d["held"] == d["paper"] == 8 and d["failed"] == []
    assert d["claims"][0]["claim"] == (
        "transfer beats scratch on the default split (alpha = 1, N_1 = 160, N_2 = 16)"
    )


def test_decide_fail_when_label_noise_helps():
    rows = _size_rows(SIZE, lambda s, lv, x: _gain(s, lv, x, flip_sign=+1))
    d = C.decide(SIZE, {"rows": rows})
    assert d["verdict"] == "FAIL" and d["failed"] == ["flip_up"] and d["held"] == 7


def test_decide_a_missing_value_fails_the_claim():
    rows = _size_rows(SIZE)
    next(r for r in rows if r["sweep"] == "alpha" and r["level"] == "half")["gain"] = None
    d = C.decide(SIZE, {"rows": rows})
    assert d["verdict"] == "FAIL" and d["missing"] == 1 and "alpha_half" in d["failed"]


def test_the_levels_decide_which_claims_are_tested():
    size = C.image_size(E.ImageConfig(), 12, X, levels={"half": I.SPLITS["half"]})
    keys = [c["key"] for c in C.claim_tests(_size_rows(size), size)]
    assert keys == ["transfer_helps", "alpha_half", "n_up", "flip_up", "n_down"]


# ----------------------------------------------------------------------
# the tests behind the verdicts, on hand-made rows
def _rows(sweep, xs, gain_of_x, seeds=12, noise=0.01, level="half", key=None):
    rng = np.random.default_rng(0)
    key = key or sweep
    rows = []
    for s in range(seeds):
        for x in xs:
            g = gain_of_x(x) + noise * rng.standard_normal()
            row = {
                "sweep": sweep,
                "level": level,
                "alpha": 1.0,
                "n_up": 160,
                "n_down": 16,
                "flip_up": 0.0,
                "replicate": s,
                "seed": 100 + s,
                "acc_scratch": 0.8,
                "acc_transfer": 0.8 + g,
                "gain": g,
                "loss_up": 0.1,
            }
            row[key] = x
            rows.append(row)
    return rows


def test_trend_test_detects_and_rejects():
    xs = (0.0, 0.25, 0.5, 0.75, 1.0)
    rows = _rows("alpha", xs, lambda a: 0.05 * a)
    up = C.trend_test(rows, "alpha", +1, level="half")
    assert up["effect"] > 0.5 and up["p"] < SIGNIFICANCE and up["n"] == 12
    assert "Page's L test" in up["statistic"]
    assert up["diff_mean"] == pytest.approx(0.05, abs=0.01)
    wrong = C.trend_test(rows, "alpha", -1, level="half")
    assert wrong["p"] > 0.5
    flat = C.trend_test(_rows("alpha", xs, lambda a: 0.0), "alpha", +1, level="half")
    assert flat["p"] > SIGNIFICANCE and abs(flat["diff_mean"]) < 0.02
    assert C.judge([{"key": "k", "paper": True, **up}])["verdict"] == "PASS"
    assert C.judge([{"key": "k", "paper": True, **wrong}])["verdict"] == "FAIL"


def test_trend_with_two_points_is_their_paired_difference():
    rows = _rows("n_up", (20, 320), lambda n: 0.0001 * n, key="n_up")
    res = C.trend_test(rows, "n_up", +1)
    assert res["p"] < SIGNIFICANCE and "2 points only" in res["statistic"]
    assert res["effect"] == res["diff_mean"] == pytest.approx(0.03, abs=0.01)
    assert C.trend_test(rows, "n_up", -1)["p"] > 0.5


def test_a_missing_value_fails_the_trend():
    rows = _rows("alpha", (0.0, 0.5, 1.0), lambda a: 0.05 * a)
    rows[4]["gain"] = None  # a diverged run
    res = C.trend_test(rows, "alpha", +1, level="half")
    assert res["n_missing"] == 1 and np.isnan(res["p"])
    assert C.judge([{"key": "k", "paper": True, **res}])["verdict"] == "FAIL"


def test_point_test():
    rows = _rows("alpha", (1.0,), lambda a: -0.03, level="none")
    res = C.point_test(rows, "none", 1.0, -1)
    assert res["p"] < SIGNIFICANCE and res["effect"] == pytest.approx(-0.03, abs=0.01)
    assert C.point_test(rows, "none", 1.0, +1)["p"] > 0.5
    const = [dict(r, acc_transfer=0.8, gain=0.0) for r in rows]  # no spread, no difference
    assert C.point_test(const, "none", 1.0, -1)["p"] == 1.0


def test_summarize_points_and_negative_regimes():
    rows = _rows("n_up", (20, 40), lambda n: 0.0, seeds=4, noise=0.0, key="n_up")
    for r in rows:
        r["gain"] = -1.0 + 0.01 * r["replicate"] if r["n_up"] == 40 else 0.0
        r["acc_transfer"] = 0.8 + r["gain"]
    pts, neg = C.summarize_points(rows)
    assert [p["n_up"] for p in pts] == [20, 40] and pts[0]["seeds"] == 4
    assert pts[0]["gain"] == 0.0 and pts[1]["gain"] == pytest.approx(-0.985)
    assert pts[0]["acc_scratch"] == pytest.approx(0.8) and pts[0]["acc_scratch_se"] == 0.0
    assert [n["n_up"] for n in neg] == [40] and neg[0]["p"] < SIGNIFICANCE


# ----------------------------------------------------------------------
# the protocol and the command line's sizes
def test_protocol():
    p = C.PROTOCOL
    assert p.name == "realdata" and p.source == "paper" and p.source in SOURCES
    assert p.salt == "realdata-v2" and p.common == E.PAIRED and not p.hash_scheme1
    assert p.fixed == "2026-12-06" and len(p.disclosures) == 2
    assert "05a93eedcb9a" in p.disclosures[1].earlier and "Holm" in p.pass_rule
    assert set(p.rules) == set(C.TESTS) - {"n_down"} and len(p.rules) == 8
    assert p.full.seeds == 80 and p.quick.seeds == 3 and p.full.source == {"source": "digits"}
    full = p.full.configs
    assert len(full["alpha"]) == 3 and all(len(g) == 5 for g in full["alpha"].values())
    assert [c.n_up for c in full["n_up"]] == [20, 40, 80, 160, 320]
    assert full["base"] == E.ImageConfig() and p.quick.configs["base"].steps_up == 200


def test_make_size():
    assert CLI.make_size().to_dict() == C.PROTOCOL.full.to_dict()
    assert CLI.make_size(quick=True).to_dict() == C.PROTOCOL.quick.to_dict()
    quick = CLI.make_size(
        quick=True,
        split="1,4/0,6:1,7/0,9",
        split_none="2,5/3,8:1,7/0,9",
        seeds=2,
        patch=2,
        standardize=True,
    )
    base = quick.configs["base"]
    assert quick.seeds == 2 and base.k == 2 and base.standardize
    assert list(quick.configs["alpha"]) == ["none", "half", "same"]
    assert quick.configs["alpha"]["same"][0].split == I.Split.parse("1,7/0,9:1,7/0,9")
    with pytest.raises(ConfigError, match="split_none needs split"):
        CLI.make_size(split_none="2,5/3,8:1,7/0,9")
    with pytest.raises(ConfigError, match="downstream task"):
        CLI.make_size(split="1,4/0,6:1,7/0,9", split_none="2,5/3,8:1,2/0,9")


# ----------------------------------------------------------------------
# end to end (tiny size)
def _tiny_size(seeds=2):
    base = E.ImageConfig(steps_up=60, steps_down=60, n_up=40, n_down=16, n_test_per_class=20)
    x = dict(alpha=[0.0, 0.5, 1.0], n_down=[8, 16], n_up=[20, 40], flip_up=[0.0, 0.3])
    return C.image_size(base, seeds, x)


def _read_csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_end_to_end(tmp_path):
    result = CLI.run_realdata(tmp_path, size=_tiny_size(), progress=False)
    assert result["name"] == "realdata" and result["verdict"] in ("PASS", "FAIL")
    assert result["source"] == "paper"
    assert f"**Verdict: {result['verdict']}**" in result["markdown"]
    folder = tmp_path / "realdata"
    data = json.loads((folder / "realdata.json").read_text())
    assert data["verdict"] == result["verdict"] and data["protocol"]["seeds"] == 2
    assert {"alpha_half", "n_up", "flip_up", "shared", "negative"} <= {
        c["key"] for c in data["decision"]["claims"]
    }
    assert (folder / "README.md").read_text() == result["markdown"]
    points = _read_csv(folder / "points.csv")
    # 3 levels x 3 alphas + 2 + 2 + 2 points, every one with 2 seeds
    assert len(points) == 15 and all(p["seeds"] == "2" for p in points)
    runs = _read_csv(folder / "runs.csv")
    assert len(runs) == 30
    for r in runs:
        assert 0.0 <= float(r["acc_transfer"]) <= 1.0
        assert float(r["gain"]) == pytest.approx(float(r["acc_transfer"]) - float(r["acc_scratch"]))
    # common random numbers: every point of replicate r has the same seed
    for rep in ("0", "1"):
        assert len({r["seed"] for r in runs if r["replicate"] == rep}) == 1
    assert runs[0]["seed"] != next(r["seed"] for r in runs if r["replicate"] == "1")
    if available():
        assert (folder / "accuracy_vs_alpha.png").read_bytes()[:4] == b"\x89PNG"
        assert "realdata/accuracy_vs_alpha.png" in result["markdown"]


def test_resume_after_an_interruption_recomputes_nothing_cached(tmp_path, monkeypatch):
    size = _tiny_size()
    real = E.transfer_vs_scratch
    calls = []

    def crash_on_fifth(*args):
        if len(calls) == 4:
            raise RuntimeError("killed")
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(E, "transfer_vs_scratch", crash_on_fifth)
    with pytest.raises(RuntimeError, match="killed"):
        CLI.run_realdata(tmp_path, size=size, progress=False)
    cached = [p for p in (tmp_path / ".sweep-cache").rglob("*.json")]
    assert len(cached) == 4  # persisted as they finished
    assert not (tmp_path / "realdata").exists()  # no outputs of a partial run
    assert not list(tmp_path.glob(".realdata-*"))

    calls.clear()
    monkeypatch.setattr(E, "transfer_vs_scratch", lambda *a: calls.append(1) or real(*a))
    CLI.run_realdata(tmp_path, size=size, progress=False)
    assert len(calls) == 12 * 2 - 4  # 12 distinct configs x 2 seeds
    monkeypatch.setattr(E, "transfer_vs_scratch", real)
    fresh = tmp_path / "fresh"
    CLI.run_realdata(fresh, size=size, progress=False)
    assert _read_csv(tmp_path / "realdata" / "runs.csv") == _read_csv(
        fresh / "realdata" / "runs.csv"
    )


def test_outputs_are_swapped_in_whole(tmp_path):
    final = tmp_path / "realdata"
    final.mkdir()
    (final / "old.txt").write_text("earlier run")
    (tmp_path / ".realdata-killed.tmp").mkdir()  # left by a killed run
    with pytest.raises(RuntimeError), CLI.staged_folder(final) as tmp:
        (tmp / "realdata").mkdir()
        (tmp / "realdata" / "README.md").write_text("half written")
        raise RuntimeError("interrupted while writing")
    assert sorted(p.name for p in final.iterdir()) == ["old.txt"]  # the old set, intact
    assert not list(tmp_path.glob(".realdata-*"))
    with CLI.staged_folder(final) as tmp:
        (tmp / "realdata").mkdir()
        (tmp / "realdata" / "README.md").write_text("new")
    assert sorted(p.name for p in final.iterdir()) == ["README.md"]  # the new set only
    assert not list(tmp_path.glob(".realdata-*"))


def test_a_changed_npz_changes_the_cache_key(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 12)
    path = tmp_path / "imgs.npz"
    np.savez(path, images=rng.integers(0, 256, (120, 8, 8), dtype=np.uint8), labels=labels)
    cfg = E.ImageConfig(steps_up=20, steps_down=20, n_up=8, n_down=4, n_test_per_class=2)
    points = [("alpha", "half", cfg), ("alpha", "half", cfg.replace(alpha=0.0))]
    cache = tmp_path / "cache"

    def run():
        return E.sweep_images(points, 2, I.source_options(path), cache=cache, progress=False)[1]

    assert run().computed == 4
    assert run().cached == 4
    np.savez(path, images=rng.integers(0, 256, (120, 8, 8), dtype=np.uint8), labels=labels)
    assert run().computed == 4  # new content: nothing reused


@pytest.mark.slow
def test_jobs_do_not_change_results():
    base = _tiny_size().configs["base"]
    points = [("alpha", "half", base.replace(alpha=a)) for a in (0.0, 1.0)]
    points.append(("flip_up", "default", base.replace(flip_up=0.3)))
    one, _ = E.sweep_images(points, 2, jobs=1, progress=False)
    two, _ = E.sweep_images(points, 2, jobs=2, progress=False)
    assert one == two


def test_claim_is_skipped_without_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    res = run_claim(C, tmp_path, quick=True)
    assert res["verdict"] == "SKIPPED" and "refimpl[realdata]" in res["statistic"]
    assert "scikit-learn" in res["skip_reason"]


# ----------------------------------------------------------------------
# command line
def _one_line_error(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_missing_extra_cli_one_line_exit_2(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    I._digits.cache_clear()  # loaded by earlier tests
    assert main(["realdata", "--quick", "--quiet", "--out", str(tmp_path)]) == 2
    assert "refimpl[realdata]" in _one_line_error(capsys)
    assert not list(tmp_path.iterdir())  # nothing written, no cache


def test_npz_malformed_cli_one_line_exit_2(tmp_path, capsys):
    path = tmp_path / "bad.npz"
    np.savez(path, images=np.zeros((3, 4, 4)))
    assert main(["realdata", "--quick", "--quiet", "--npz", str(path), "--out", str(tmp_path)]) == 2
    assert "missing array 'labels'" in _one_line_error(capsys)


def test_npz_too_few_images_per_class_cli(tmp_path, capsys):
    path = tmp_path / "small.npz"
    np.savez(path, images=np.zeros((50, 8, 8), np.uint8), labels=np.repeat(np.arange(10), 5))
    assert main(["realdata", "--quick", "--quiet", "--npz", str(path), "--out", str(tmp_path)]) == 2
    assert "has 5 images; the run needs" in _one_line_error(capsys)
    assert not (tmp_path / "realdata").exists()


def test_npz_patch_size_not_dividing_cli(tmp_path, capsys):
    path = tmp_path / "odd.npz"
    np.savez(path, images=np.zeros((20, 6, 6), np.uint8), labels=np.arange(20) % 10)
    assert main(["realdata", "--quick", "--quiet", "--npz", str(path), "--out", str(tmp_path)]) == 2
    assert "cannot be cut into 4x4 blocks" in _one_line_error(capsys)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--split", "1,2/3"], "UP_POS/UP_NEG"),
        (["--split-none", "0,5/6,9:3,2/8,7"], "split_none needs split"),
        (["--seeds", "0"], "expected a positive integer"),
    ],
)
def test_cli_bad_options(tmp_path, capsys, argv, message):
    try:
        status = main(["realdata", "--quick", "--out", str(tmp_path), *argv])
    except SystemExit as exc:  # argparse's own errors
        status = exc.code
    assert status == 2 and message in _one_line_error(capsys)


def test_cli_quick(tmp_path, capsys):
    assert main(["realdata", "--quick", "--quiet", "--seeds", "2", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "**Verdict:" in out and "wrote" in out and "Points" not in out
    data = json.loads((tmp_path / "realdata" / "realdata.json").read_text())
    assert data["protocol"]["seeds"] == 2 and data["quick"]
    assert sorted(p.name for p in (tmp_path / "realdata").glob("*.csv")) == [
        "points.csv",
        "runs.csv",
    ]


# ----------------------------------------------------------------------
# registry examples (tests/claims/test_declarations.py)
def examples(size):
    """PASS: rows that follow the paper, on the size's seeds (80 at full size: all
    8 analogues hold under Holm; none at the quick size's 3); FAIL: label noise
    helps."""
    m = {"data": "synthetic rows", "scikit-learn": None, "cached": 0}
    extra = dict.fromkeys(E.METRICS, 0.0)  # the metrics present() lists but does not judge
    extra.update(split="s")
    flip = _size_rows(size, lambda s, lv, x: _gain(s, lv, x, flip_sign=+1), seeds=size.seeds)
    out = {"FAIL": dict(m, rows=[{**extra, **r} for r in flip])}
    if size.seeds >= 12:
        out["PASS"] = dict(m, rows=[{**extra, **r} for r in _size_rows(size, seeds=size.seeds)])
    return out
