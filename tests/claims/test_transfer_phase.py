"""transfer_phase: its declared protocol and design, the steps of the decision
procedure on hand-made inputs with known answers, and ``decide`` / ``present``
on synthetic measurements (:func:`examples`).

Expected values are worked out by hand:

- Wilcoxon signed-rank, exact, n differences of one sign and distinct sizes:
  p = 1/2^n (5 seeds: 1/32 < 0.05, so such a cell is labelled);
- a label that is a threshold on a scalar gives that scalar AUC 1;
- logistic fit, 4 points at x = -1 with 1 positive and 4 at x = +1 with 3
  positive: the (unpenalised) maximum likelihood fits each group's rate,
  b_0 - b_1 = logit(1/4), b_0 + b_1 = logit(3/4), so b_0 = 0, b_1 = ln 3,
  threshold 0 and 10-90% width 2 ln 9 / ln 3 = 4 decades (the ridge of 1e-3
  moves b_1 by well under 1%).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from refimpl.claims import _transfer_phase_fit as J
from refimpl.claims import transfer_phase as T
from refimpl.lab.claim import Disclosure, Figure, Outcome, Protocol, Table, run_claim

SEEDS = 10


def _errors(sign, rng, base=0.2, size=0.08, seeds=SEEDS):
    """(cells, seeds) err_transfer and err_scratch whose paired gain has the
    given sign per cell (+1, -1, or 0: gains of alternating sign)."""
    et = base + 0.01 * rng.random((len(sign), seeds))
    gain = np.empty_like(et)
    for i, s in enumerate(sign):
        g = size * (1 + rng.random(seeds))
        gain[i] = s * g if s else g * np.resize([1, -1], seeds)
    return et, et + gain


def _case(label_of, n=120, seed=0):
    """Random candidates and features of ``n`` cells, errors whose sign per
    cell is ``label_of(log10 Gamma_ratio, features)``, and the fixed split."""
    rng = np.random.default_rng(seed)
    feats = rng.normal(size=(n, 10))
    ratio = 10 ** rng.uniform(-2, 2, n)
    cand = {
        "gamma_inh": 10 ** rng.uniform(-2, 2, n),
        "gamma_ratio": ratio,
        "u_norm": 10 ** rng.uniform(-0.6, 0.6, n),
        "inv_gamma_scr": 10 ** rng.uniform(-1, 1, n),
    }
    sign = label_of(np.log10(ratio), feats)
    et, es = _errors(sign, rng)
    return cand, feats, et, es, J.split(n)


def _measurements(size, sign):
    """Measurements shaped as ``measure`` returns them: per cell a gain of the
    given sign (+1 / -1) on every seed, distinct sizes, errors near 0.2
    (informative), every loss 0.005 (nothing stalled)."""
    n, seeds = len(size.configs["cells"]), size.seeds
    k = np.arange(seeds)[None, :]
    et = 0.2 + 0.001 * k + np.zeros((n, 1))
    es = et + np.asarray(sign)[:, None] * 0.05 * (1 + k / seeds)
    loss = np.full((n, seeds), 0.005)
    m = dict(err_transfer=et, err_scratch=es, loss_down=loss, loss_scratch=loss.copy())
    return {**m, "loss_up": loss.copy(), "steps_up": np.full((n, seeds), 100.0)}


def examples(size):
    """PASS: the sign of every cell is a threshold on Gamma_inh (its median), so
    Gamma_inh separates the held-out cells perfectly and the free model adds
    nothing significant. FAIL: the sign is the cell's parity (p_2 = 0: +1, 0.1:
    -1), which no candidate scalar carries."""
    configs = size.configs["cells"]
    x = np.log10(T.scores(configs)[0]["gamma_inh"])
    parity = np.array([1 if c.flip_down == 0 else -1 for c in configs])
    return {
        "PASS": _measurements(size, np.where(x > np.median(x), 1, -1)),
        "FAIL": _measurements(size, parity),
    }


# ----------------------------------------------------------------------
# the protocol and the design
def test_protocol_is_declared():
    p = T.PROTOCOL
    assert isinstance(p, Protocol) and p.name == "transfer_phase" and p.source == "paper"
    assert p.hash_scheme1 == "56e9c37648d7"  # the committed full-size hash
    assert p.salt == "transfer_phase-v2" and p.fixed == "2026-11-29" and p.common == ()
    assert len(p.disclosures) == 1 and isinstance(p.disclosures[0], Disclosure)
    assert "385 of 4000 runs" in p.disclosures[0].reason
    text = json.dumps(p.to_dict(), allow_nan=False) + json.dumps(p.disclosures[0].to_dict())
    assert "audit" not in text and "issue" not in text
    assert p.hash(quick=True) != p.hash()
    assert len(p.full.configs["cells"]) == 400 and p.full.seeds == 8 and p.full.cap == 2000
    assert len(p.quick.configs["cells"]) == 40 and p.quick.seeds == 5 and p.quick.cap == 400
    assert "AUC >= 0.9" in p.pass_rule and "LR p > 0.01" in p.pass_rule


def test_design_is_fixed_and_in_range():
    size = T.PROTOCOL.full
    cells = T.design(size.ranges, 400)
    assert cells == T.design(T.RANGES, 400)
    for i, c in enumerate(cells):
        assert c["flip_down"] == (0.0, 0.1)[i % 2]
        assert 10 <= c["n_up"] <= min(400, c["d"] // 2)
        for f in J.FACTORS:
            if f != "n_up":
                lo, hi = T.RANGES[f]
                assert lo * 0.999 <= c[f] <= hi * 1.001, (f, c[f])
    cfg, c = size.configs["cells"][0], cells[0]
    assert (cfg.d, cfg.n_up, cfg.u_norm, cfg.flip_down) == (c["d"], c["n_up"], c["u_norm"], 0.0)
    assert cfg.eta == pytest.approx(200 / (c["sigma_p_up"] ** 2 * c["d"]))
    assert cfg.eta_of("down") == pytest.approx(200 / (c["sigma_p_down"] ** 2 * c["d"]))
    assert (cfg.epsilon, cfg.steps_up, cfg.steps_down, cfg.n_test) == (0.01, 2000, 2000, 4000)
    assert cfg.flip_up == 0.0


def test_split_is_half_and_fixed():
    fit = J.split(400)
    assert fit.sum() == 200 and (fit == J.split(400)).all()
    assert J.split(41).sum() == 20


# ----------------------------------------------------------------------
# the steps of the procedure
def test_labels_signs_and_uninformative_cells():
    rng = np.random.default_rng(1)
    et, es = _errors([1, -1, 0], rng)
    o = J.labelled(et, es, np.array([True, False, False]))
    assert o["label"].tolist() == [1, -1, 0]
    assert o["p_pos"][0] == pytest.approx(1 / 2**SEEDS)  # every gain positive
    assert o["p_neg"][1] == pytest.approx(1 / 2**SEEDS)
    assert o["fit"].tolist() == [True, False, False]
    assert o["held"].tolist() == [False, True, False]
    tiny, both_bad = np.full((2, SEEDS), 0.001), np.full((2, SEEDS), 0.48)
    et, es = np.vstack([tiny, both_bad]), np.vstack([tiny + 0.005, both_bad + 0.01])
    o = J.labelled(et, es, np.zeros(4, bool))
    assert o["uninformative"].tolist() == [True] * 4 and not o["label"].any()


def test_logistic_boundary_and_width_in_closed_form():
    x = np.array([-1.0] * 4 + [1.0] * 4)
    y = np.array([1, 0, 0, 0, 1, 1, 1, 0], float)
    lg = J.logistic_1d(x, y)
    assert lg["b0"] == pytest.approx(0, abs=1e-6)
    assert lg["b1"] == pytest.approx(math.log(3), rel=1e-2)
    assert lg["log10_threshold"] == pytest.approx(0, abs=1e-6)
    assert lg["width_decades"] == pytest.approx(4.0, rel=1e-2)


def test_bootstrap_interval_of_a_perfect_separation():
    rng = np.random.default_rng(0)
    s, y = np.arange(10.0), (np.arange(10) >= 5).astype(float)
    assert J.boot_auc(s, y, rng) == [1.0, 1.0]
    assert J.boot_auc(s, np.ones(10), rng) is None  # one class: no AUC


def test_counts_and_the_rule():
    o = {
        "label": np.array([1, -1, 0, 0, 1]),
        "uninformative": np.array([False, False, True, False, False]),
        "held": np.array([True, True, False, False, False]),
    }
    o["y"] = (o["label"] == 1).astype(float)
    cn = J.counts(o)
    assert cn == dict(
        cells=5,
        positive=2,
        negative=1,
        neither=1,
        uninformative=1,
        held_labelled=2,
        held_positive=1,
        held_negative=1,
    )
    ok = dict(held_labelled=20, held_positive=5, held_negative=15)
    assert J.enough(ok) and not J.enough({**ok, "held_labelled": 19})
    assert not J.enough({**ok, "held_positive": 4})
    assert J.passes(ok, 0.9, 0.0101)
    assert not J.passes(ok, 0.8999, 0.5) and not J.passes(ok, 1.0, 0.01)
    assert not J.passes(ok, float("nan"), 0.5) and not J.passes(ok, 1.0, float("nan"))


def test_best_scalar_is_the_paper_side_one_of_highest_fit_auc():
    c = {k: {"auc_fit": a} for k, a in zip(J.CANDIDATES, (0.7, 0.9, 0.8, 1.0), strict=True)}
    assert J.best_scalar(c) == "gamma_ratio"  # the null's 1.0 does not compete
    c = {k: {"auc_fit": float("nan")} for k in J.CANDIDATES}
    assert J.best_scalar(c) is None


# ----------------------------------------------------------------------
# judge on hand-made candidates
def test_one_scalar_that_separates_passes():
    cand, feats, et, es, fit = _case(lambda g, f: np.where(g > 0, 1, -1))
    dec = J.judge(cand, feats, et, es, fit)
    assert dec["best"] == "gamma_ratio"
    assert dec["candidates"]["gamma_ratio"]["auc_held"] == 1.0
    assert dec["candidates"]["gamma_ratio"]["logistic"]["log10_threshold"] == pytest.approx(
        0, abs=0.3
    )
    assert dec["lr"]["df"] == 9 and dec["lr"]["p"] > 0.01
    assert dec["verdict"] == "PASS" and dec["missing"] == 0


def test_a_second_factor_the_scalar_misses_fails():
    # the sign depends on Gamma_ratio and strongly on one free factor
    cand, feats, et, es, fit = _case(lambda g, f: np.where(g + 2 * f[:, 3] > 0, 1, -1), n=200)
    dec = J.judge(cand, feats, et, es, fit)
    assert dec["lr"]["p"] < 0.01
    assert dec["free"]["auc_held"] > dec["candidates"]["gamma_ratio"]["auc_held"]
    assert dec["verdict"] == "FAIL"


def test_no_separating_scalar_fails_on_auc():
    cand, feats, et, es, fit = _case(lambda g, f: np.where(f[:, 0] > 0, 1, -1))
    dec = J.judge(cand, feats, et, es, fit)
    assert max(dec["candidates"][k]["auc_held"] for k in J.PAPER_CANDIDATES) < 0.9
    assert dec["verdict"] == "FAIL"


def test_a_missing_value_fails():
    cand, feats, et, es, fit = _case(lambda g, f: np.where(g > 0, 1, -1))
    et = et.copy()
    et[5, 2] = np.nan
    dec = J.judge(cand, feats, et, es, fit)
    assert dec["missing"] == 1
    assert dec["verdict"] == "FAIL" and dec["verdict_tests"] == "PASS"


def test_too_few_labelled_cells_fail():
    cand, feats, et, es, fit = _case(lambda g, f: np.where(g > 1.7, 1, 0))  # almost all "neither"
    dec = J.judge(cand, feats, et, es, fit)
    assert not dec["enough"]
    assert dec["verdict"] == "FAIL"


# ----------------------------------------------------------------------
# decide and present on measurements shaped as measure returns them
@pytest.mark.parametrize("quick", [True, False])
def test_examples_give_their_verdicts_and_present_works(quick):
    size = T.PROTOCOL.size(quick)
    n = len(size.configs["cells"])
    for verdict, m in examples(size).items():
        dec = T.decide(size, m)
        assert dec["verdict"] == verdict and dec["missing"] == 0
        assert dec["counts"]["positive"] + dec["counts"]["negative"] == n  # every cell labelled
        out = T.present(size, m, dec)
        assert isinstance(out, Outcome) and out.statistic.endswith(f"{size.seeds} seeds per cell")
        csv = [s for s in out.sections if isinstance(s, Table) and s.name == "transfer_phase"]
        assert len(csv) == 1 and len(csv[0].rows) == n and len(csv[0].header) == 21
        assert sum(isinstance(s, Figure) for s in out.sections) == 2
    dec = T.decide(size, examples(size)["PASS"])
    assert dec["best"] == "gamma_inh" and dec["candidates"]["gamma_inh"]["auc_held"] == 1.0


def test_decide_counts_stalled_runs():
    size = T.PROTOCOL.quick
    m = examples(size)["PASS"]
    m["loss_down"][0, :3] = 0.02  # 3 fine-tuning runs above the target 0.01
    m["loss_scratch"][1, 0] = 0.5
    m["loss_scratch"][2, 0] = np.nan  # missing: not counted as stalled
    m["loss_up"][3] = 0.011  # a whole cell's 5 upstream runs
    st = T.decide(size, m)["stalled"]
    assert st == {"transfer": 3, "scratch": 1, "upstream": 5, "runs": 40 * 5}


def test_quick_run_writes_its_outputs(tmp_path):
    entry = run_claim(T, tmp_path, quick=True, jobs=1)
    assert entry["source"] == "paper" and entry["verdict"] in ("PASS", "FAIL")
    doc = json.loads((tmp_path / "transfer_phase" / "transfer_phase.json").read_text())
    assert set(doc["decision"]["candidates"]) == set(J.CANDIDATES)
    assert len(doc["data"]["per_seed"]["err_transfer"]) == 40
    assert (tmp_path / "transfer_phase" / "transfer_phase.csv").exists()
