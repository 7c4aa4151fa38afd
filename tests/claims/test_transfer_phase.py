"""transfer_phase: the design, the labels and the decision on hand-made inputs."""

import numpy as np
import pytest

from refimpl.claims import transfer_phase as T

SEEDS = 10


def _errors(sign, rng, base=0.2, size=0.08):
    """(cells, seeds) err_transfer and err_scratch whose paired gain has the
    given sign per cell (+1, -1, or 0: gains of alternating sign)."""
    et = base + 0.01 * rng.random((len(sign), SEEDS))
    gain = np.empty_like(et)
    for i, s in enumerate(sign):
        g = size * (1 + rng.random(SEEDS))
        gain[i] = s * g if s else g * np.resize([1, -1], SEEDS)
    return et, et + gain


def _case(label_of, n=120, seed=0):
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
    return cand, feats, et, es, T.split(n)


def test_one_scalar_that_separates_passes():
    cand, feats, et, es, fit = _case(lambda g, f: np.where(g > 0, 1, -1))
    dec = T.decide(cand, feats, et, es, fit)
    assert dec["best"] == "gamma_ratio"
    assert dec["candidates"]["gamma_ratio"]["auc_held"] == pytest.approx(1.0)
    assert dec["candidates"]["gamma_ratio"]["logistic"]["log10_threshold"] == pytest.approx(
        0, abs=0.3
    )
    assert dec["lr"]["p"] > 0.01
    assert dec["verdict"] == "PASS"


def test_a_second_factor_the_scalar_misses_fails():
    # the sign depends on Gamma_ratio and strongly on one free factor
    cand, feats, et, es, fit = _case(lambda g, f: np.where(g + 2 * f[:, 3] > 0, 1, -1), n=200)
    dec = T.decide(cand, feats, et, es, fit)
    assert dec["lr"]["p"] < 0.01
    assert dec["free"]["auc_held"] > dec["candidates"]["gamma_ratio"]["auc_held"]
    assert dec["verdict"] == "FAIL"


def test_no_separating_scalar_fails_on_auc():
    cand, feats, et, es, fit = _case(lambda g, f: np.where(f[:, 0] > 0, 1, -1))
    dec = T.decide(cand, feats, et, es, fit)
    assert max(dec["candidates"][k]["auc_held"] for k in T.PAPER_CANDIDATES) < 0.9
    assert dec["verdict"] == "FAIL"


def test_a_missing_value_fails():
    cand, feats, et, es, fit = _case(lambda g, f: np.where(g > 0, 1, -1))
    et = et.copy()
    et[5, 2] = np.nan
    dec = T.decide(cand, feats, et, es, fit)
    assert dec["missing"] == 1
    assert dec["verdict"] == "FAIL"


def test_too_few_labelled_cells_fail():
    cand, feats, et, es, fit = _case(lambda g, f: np.where(g > 1.7, 1, 0))  # almost all "neither"
    dec = T.decide(cand, feats, et, es, fit)
    assert not dec["enough"]
    assert dec["verdict"] == "FAIL"


def test_labels_signs_and_uninformative_cells():
    rng = np.random.default_rng(1)
    et, es = _errors([1, -1, 0], rng)
    lab, p_pos, p_neg, unin = T.labels(et, es)
    assert lab.tolist() == [1, -1, 0]
    assert p_pos[0] < 0.05 and p_neg[1] < 0.05
    tiny = np.full((2, SEEDS), 0.001)
    both_bad = np.full((2, SEEDS), 0.48)
    lab, *_, unin = T.labels(
        np.vstack([tiny, both_bad]), np.vstack([tiny + 0.005, both_bad + 0.01])
    )
    assert unin.tolist() == [True, True, True, True] and not lab.any()


def test_design_is_fixed_and_in_range():
    cells = T.design()
    assert len(cells) == T.CELLS and cells == T.design()
    for i, c in enumerate(cells):
        assert c["flip_down"] == T.FLIPS[i % 2]
        assert 10 <= c["n_up"] <= min(T.RANGES["n_up"][1], c["d"] // 2)
        for f in T.FACTORS:
            if f != "n_up":
                lo, hi = T.RANGES[f]
                assert lo * 0.999 <= c[f] <= hi * 1.001, (f, c[f])
    cfg = T.config(cells[0])
    assert cfg.eta == pytest.approx(T.ETA_C / (cells[0]["sigma_p_up"] ** 2 * cells[0]["d"]))
    assert cfg.eta_of("down") == pytest.approx(
        T.ETA_C / (cells[0]["sigma_p_down"] ** 2 * cells[0]["d"])
    )
    fit = T.split(len(cells))
    assert fit.sum() == len(cells) // 2 and (fit == T.split(len(cells))).all()


def test_quick_run_writes_its_outputs(tmp_path):
    res = T.run(tmp_path, quick=True, jobs=1)
    assert res["source"] == "paper" and res["verdict"] in ("PASS", "FAIL")
    assert set(res["held_out_auc"]) == set(T.CANDIDATES) | {"free"}
    assert (tmp_path / "transfer_phase" / "transfer_phase.json").exists()
    assert (tmp_path / "transfer_phase" / "transfer_phase.csv").exists()
