"""The failure_mode claim (refimpl/claims/failure_mode.py): its pure decision
on hand-made inputs, what it reports beside the verdict, its protocol, and a
quick end-to-end run.

Expected p-values come from closed forms, not from running the code:

- one-sided Fisher exact test of a table [[k, 0], [0, n - k]] (every exposed
  run has the event, no unexposed one): p = 1 / C(n, k) (the hypergeometric
  probability of the most extreme table, the only one as extreme);
- exact McNemar, one-sided: k discordant pairs, all in the tested
  direction: p = 2^-k; none discordant: p = 1.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from refimpl.claims import failure_mode as fm
from refimpl.claims._base import EPSILON, FAILURE_ERROR
from refimpl.lab import stats as S

NAN = float("nan")
N, K = 20, 10  # 20 seeds, 10 of them with dead points


def approx(x, rel=1e-9, abs=1e-15):
    return pytest.approx(x, rel=rel, abs=abs)


def separated(n=N, k=K):
    """dead >= 1 exactly where the run fails and stalls (first k seeds)."""
    dead = np.array([1 + i % 3 for i in range(k)] + [0] * (n - k), float)
    err = np.where(dead >= 1, 0.26, 0.03)
    loss = np.where(dead >= 1, 0.07, 1e-4)
    return dead, err, loss


def test_dead_runs_that_fail_and_stall_pass_with_the_exact_fisher_p():
    dead, err, loss = separated()
    d = fm.decide(dead, err, dead, loss)
    assert d["verdict"] == d["verdict_tests"] == "PASS" and d["missing"] == 0
    assert d["ok"] == {"a": True, "b": True}
    for t in (d["failure"], d["stalled"]):
        assert t["p"] == approx(1 / math.comb(N, K), rel=1e-6)
        assert t["table"] == [[K, 0], [0, N - K]]
        assert t["rate_exposed"] == 1.0 and t["rate_unexposed"] == 0.0


def test_no_association_fails():
    dead, _, _ = separated()
    event = np.tile([1.0, 0.0], N // 2)  # half of either group fails and stalls
    d = fm.decide(dead, np.where(event > 0, 0.3, 0.02), dead, np.where(event > 0, 0.05, 0.0))
    assert d["verdict"] == "FAIL" and d["ok"] == {"a": False, "b": False}
    assert d["failure"]["p"] > 0.5 and d["stalled"]["p"] > 0.5


def test_association_for_failure_only_fails():
    dead, err, _ = separated()
    loss = np.where(np.arange(N) % 2 == 0, 0.05, 1e-4)  # stalls unrelated to dead points
    d = fm.decide(dead, err, dead, loss)
    assert d["ok"] == {"a": True, "b": False}
    assert d["verdict"] == d["verdict_tests"] == "FAIL"
    # and the mirror: stalling only
    d = fm.decide(dead, np.full(N, 0.03), dead, separated()[2])
    assert d["ok"] == {"a": False, "b": True} and d["verdict"] == "FAIL"


def test_the_loss_rule_uses_its_own_dead_count():
    dead, err, loss = separated()
    assert fm.decide(dead, err, np.zeros(N), loss)["ok"] == {"a": True, "b": False}
    assert fm.decide(np.zeros(N), err, dead, loss)["ok"] == {"a": False, "b": True}


@pytest.mark.parametrize("where", ["err", "loss", "dead"])
@pytest.mark.parametrize("missing", [None, NAN])
def test_a_missing_value_fails_the_verdict(where, missing):
    dead, err, loss = separated()
    dead, err, loss = dead.astype(object), err.astype(object), loss.astype(object)
    {"err": err, "loss": loss, "dead": dead}[where][0] = missing
    d = fm.decide(dead, err, dead if where == "dead" else separated()[0], loss)
    assert d["missing"] == (2 if where == "dead" else 1)
    assert d["verdict"] == "FAIL" and d["verdict_tests"] == "FAIL"  # its test has p NaN
    t = d["stalled"] if where == "loss" else d["failure"]
    assert math.isnan(t["p"]) and t["n_missing"] == 1


def test_no_dead_run_gives_p_one_and_fails():
    _, err, loss = separated()
    d = fm.decide(np.zeros(N), err, np.zeros(N), loss)
    assert d["failure"]["p"] == 1.0 and d["stalled"]["p"] == 1.0
    assert d["verdict"] == "FAIL"
    d = fm.decide(np.ones(N), err, np.ones(N), loss)  # every run dead: no contrast
    assert d["failure"]["p"] == 1.0 and d["verdict"] == "FAIL"


def test_the_thresholds_are_strict():
    dead, _, _ = separated()
    at = fm.decide(dead, np.full(N, FAILURE_ERROR), dead, np.full(N, EPSILON))
    assert at["failure"]["table"][0][0] == 0 and at["stalled"]["table"][0][0] == 0
    above = fm.decide(
        dead, np.full(N, np.nextafter(FAILURE_ERROR, 1)), dead, np.full(N, np.nextafter(EPSILON, 1))
    )
    assert above["failure"]["table"][0][0] == K and above["stalled"]["table"][0][0] == K


def _grid(ev_one, ev_half, ev_remedy, dead_one):
    """(points, seeds) arrays of both rules with the given event indicators."""
    n = len(ev_one)
    ev = np.zeros((len(fm.POINTS), n))
    ev[fm.ONE], ev[fm.HALF] = ev_one, ev_half
    for k in fm.COMPARED.values():
        if k != fm.HALF:
            ev[k] = ev_remedy
    dead = np.zeros_like(ev)
    dead[fm.ONE] = dead_one
    err = np.where(ev > 0, 0.3, 0.02)
    es = np.full_like(ev, 0.1)
    loss = np.where(ev > 0, 0.05, 1e-4)
    both = lambda a: {"steps": a, "loss": a}
    return both(dead), both(err), both(es), both(loss)


def test_findings_remedies_alpha_and_dead_count():
    n = 12
    ev_one = np.ones(n)
    dead_one = np.r_[np.full(8, 2.0), np.zeros(4)]
    ev_one[8:] = 0  # events exactly at dead >= 1
    rep = fm.findings(*_grid(ev_one, ev_one, np.zeros(n), dead_one))
    for rule in ("steps", "loss"):
        f = rep[rule]
        for name in fm.REMEDIES:  # 8 runs fail at alpha = 1 only
            t = f["remedies"][name]
            assert t["p"] == approx(2.0**-8) and t["removes"] and t["rate_a"] == 0.0
        assert f["remedies"]["alpha = 0.5"]["p"] == 1.0  # no discordant pair
        assert not f["remedies"]["alpha = 0.5"]["removes"]
        assert f["vs_half"]["p"] == 1.0
        assert f["auc"]["auc"] == 1.0
        assert 0 < f["auc"]["p"] < 0.01  # Mann-Whitney (ties: normal approx.)
        assert f["spearman"]["rho"] > 0.9 and f["spearman"]["p"] < 0.01
        assert f["event_rate"][fm.ONE] == approx(8 / n)
        assert f["dead_rate"][fm.ONE] == approx(8 / n) and f["dead_mean"][fm.ONE] == approx(16 / n)
    # the reverse: alpha = 1 has more events than alpha = 0.5, a remedy makes it worse
    rep = fm.findings(*_grid(ev_one, np.zeros(n), np.ones(n), dead_one))
    assert rep["steps"]["vs_half"]["p"] == approx(2.0**-8)
    assert all(rep["steps"]["remedies"][r]["p"] == 1.0 for r in fm.REMEDIES)


def test_findings_without_a_contrast_are_not_a_number():
    n = 6
    rep = fm.findings(*_grid(np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n)))
    assert math.isnan(rep["steps"]["auc"]["auc"]) and math.isnan(rep["steps"]["spearman"]["rho"])


def test_protocol_and_points():
    p = fm.PROTOCOL
    assert p.claim == fm.NAME and p.fixed == "2026-11-29" and p.seeds == fm.SEEDS == 200
    assert p.extra["salt"] == "failure_mode-v1" and str(S.SIGNIFICANCE) in p.pass_rule
    assert fm.SOURCE == "hypothesis" and fm.QUICK_SEEDS == 8
    assert [o["alpha"] for _, o in fm.POINTS] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    for quick, n_down, d in ((False, 30, 600), (True, 16, 120)):
        base = fm.regime(quick)
        assert (base.n_down, base.d, base.u_norm, base.flip_down) == (n_down, d, 2.0, 0.3)
        grid = [base.replace(**o) for _, o in fm.POINTS]  # valid configs (eta * lambda < 1)
        assert grid[4].weight_decay == 0.01 and grid[5].rescale_inherited == 0.5
        assert grid[4].eta == 1.0
    assert fm.POINTS[fm.ONE][1] == {"alpha": 1.0} and fm.POINTS[fm.HALF][1] == {"alpha": 0.5}


def test_quick_run_end_to_end(tmp_path):
    res = fm.run(tmp_path, quick=True, jobs=1)
    assert res["name"] == "failure_mode" and res["source"] == "hypothesis"
    assert res["verdict"] in ("PASS", "FAIL")
    assert f"**Verdict: {res['verdict']}**" in res["markdown"]
    data = json.loads((tmp_path / "failure_mode" / "failure_mode.json").read_text())
    assert set(data["points"]) == {p for p, _ in fm.POINTS}
    for point in data["points"].values():
        assert set(point) == {"steps", "loss"}
        assert 0.0 <= point["steps"]["dead_rate"] <= 1.0
    assert data["protocol_hash"] == fm.PROTOCOL.hash and data["quick"] is True
    assert len(data["per_seed"]["steps"]["alpha = 1"]["dead_points"]) == fm.QUICK_SEEDS
    rows = (tmp_path / "failure_mode" / "failure_mode.csv").read_text().splitlines()
    assert len(rows) == 1 + 2 * len(fm.POINTS)


def test_dead_points_on_a_hand_made_task():
    from refimpl.data import Task
    from refimpl.lab.measures import dead_points

    e = np.eye(6)
    # point 0: flipped, observed -1 (axis 1 of W); point 1: flipped, observed +1
    # (axis 0); point 2: clean. Signal patch first, noise patch second.
    X = np.stack([[e[0], e[1]], [-e[0], e[2]], [e[0], e[3]]])
    task = Task(
        X=X,
        y=np.array([-1.0, 1.0, 1.0]),
        y_clean=np.array([1.0, -1.0, 1.0]),
        xi=np.stack([e[1], e[2], e[3]]),
        signals=e[:1],
    )
    W0 = np.zeros((2, 2, 6))
    assert dead_points(W0, task) == 2  # zero pre-activations are inactive
    W0[1, 1] = e[1]  # a class -1 filter fires on point 0's noise
    assert dead_points(W0, task) == 1
    W0[0, 0] = -e[0]  # a class +1 filter fires on point 1's signal patch
    assert dead_points(W0, task) == 0
    # only the inherited filters count: class -1's inherited filter 0 is silent
    # on point 0; class +1 has no inherited filter, so point 1 cannot be dead
    inherited = np.array([[False, False], [True, False]])
    assert dead_points(W0, task, inherited) == 1
    W0[1, 0] = 0.5 * e[1]
    assert dead_points(W0, task, inherited) == 0
