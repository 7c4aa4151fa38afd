"""Cross-checking: replay, compare, coefficient recovery, explain
mode on single variants, unusable files. Combinations, float32, the bias key
and patch roles: tests/test_crosscheck_search.py; the framework clients:
tests/test_crosscheck_clients.py."""

import json
import os

import numpy as np
import pytest
from crosscheck_common import CONFIG
from hypothesis import given
from hypothesis import strategies as st

from refimpl import crosscheck as cc
from refimpl.cli import main
from refimpl.data import Task
from refimpl.train import train_stage
from refimpl.trajectory import COEFFICIENT_KEYS, load, save, stage_arrays
from refimpl.transfer import run_experiment


@pytest.fixture(scope="module")
def exp():
    return run_experiment(CONFIG)


@pytest.fixture(scope="module")
def ref_path(exp, tmp_path_factory):
    path = tmp_path_factory.mktemp("cc") / "ref.npz"
    save(path, exp)
    return str(path)


def arrays_of(path):
    with np.load(path, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def weights_only(arrays):
    return {k: v for k, v in arrays.items() if k.split("/")[-1] not in COEFFICIENT_KEYS}


def rows_by(report):
    return {(r.stage, r.quantity): r for r in report.rows}


def run_cli(argv, capsys):
    status = main(argv)
    out, err = capsys.readouterr()
    return status, out, err


# ---------------------------------------------------------------------------
# compare_arrays: the tolerance rule on hand-made numbers
# ---------------------------------------------------------------------------


def test_compare_arrays_tolerance_rule():
    b = np.array([[1.0, 0.001], [2.0, -4.0]])
    steps = np.array([0, 7])
    # default atol = rtol * max|b_k|: snapshot 0 allows 1e-10 + 1e-10*|b|
    a = b.copy()
    a[0, 1] += 1.5e-10  # tol there: 1e-10*1 + 1e-10*0.001 < 1.5e-10
    max_abs, max_rel, first = cc.compare_arrays(a, b, steps, rtol=1e-10)
    assert first == 0
    assert max_abs == pytest.approx(1.5e-10, rel=1e-6)
    assert max_rel == pytest.approx(1.5e-10, rel=1e-6)
    a = b.copy()
    a[1, 1] += 7e-10  # tol: 1e-10*4 + 1e-10*4 = 8e-10: agrees
    assert cc.compare_arrays(a, b, steps, rtol=1e-10)[2] is None
    a[1, 1] += 2e-10  # 9e-10 > 8e-10
    assert cc.compare_arrays(a, b, steps, rtol=1e-10)[2] == 7
    # explicit atol
    assert cc.compare_arrays(a, b, steps, rtol=0.0, atol=1e-9)[2] is None
    assert cc.compare_arrays(a, b, steps, rtol=0.0, atol=8e-10)[2] == 7
    # a NaN never agrees
    a[0, 0] = np.nan
    assert cc.compare_arrays(a, b, steps)[2] == 0


@given(st.integers(1, 6), st.integers(1, 5), st.data())
def test_compare_arrays_finds_the_first_perturbed_snapshot(K, width, data):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    b = rng.standard_normal((K, 2, width)) + 0.5
    steps = np.cumsum(rng.integers(1, 9, K)) - 1
    k = data.draw(st.integers(0, K - 1))
    entry = data.draw(st.integers(0, 2 * width - 1))
    a = b.copy()
    scale = np.abs(b[k]).max()
    a[k].flat[entry] += 3e-9 * scale  # well above 1e-10 * (scale + |b|) <= 2e-10 scale
    a[k:] += 1e-13 * scale  # rounding-sized noise everywhere after: agrees
    max_abs, max_rel, first = cc.compare_arrays(a, b, steps, rtol=1e-10)
    assert first == steps[k]
    assert max_rel == pytest.approx(3e-9 + 1e-13, rel=1e-3)


# ---------------------------------------------------------------------------
# replay and compare
# ---------------------------------------------------------------------------


def test_replay_agrees_with_refimpl_file(ref_path, capsys):
    report = cc.crosscheck(ref_path)
    assert report.status == 0
    assert {r.stage for r in report.rows} == {"up", "down", "scratch"}
    assert {r.quantity for r in report.rows} == set(cc.QUANTITIES)
    for r in report.rows:
        assert not r.skipped and r.max_rel <= 1e-12, r
    loss = rows_by(report)[("up", "loss")]
    assert loss.compared == CONFIG.steps_up + 1
    status, out, err = run_cli(["crosscheck", ref_path], capsys)
    assert status == 0 and "RESULT: all quantities agree" in out and err == ""


def test_two_files_agree(ref_path, capsys):
    status, out, _ = run_cli(["crosscheck", ref_path, ref_path], capsys)
    assert status == 0 and "RESULT: all quantities agree" in out


def test_runs_of_different_length_differ(tmp_path, capsys):
    """Two files of the same problem, one trained 10 steps longer downstream:
    not an agreement, the difference named from the first step only one holds."""
    short = CONFIG.replace(steps_down=10, epsilon=0.0)
    paths = []
    for k, c in enumerate((short, short.replace(steps_down=20))):
        paths.append(str(tmp_path / f"run{k}.npz"))
        save(paths[-1], run_experiment(c))
    report = cc.crosscheck(paths[1], paths[0], explain=False)
    assert report.status == 1
    row = rows_by(report)[("down", "length")]
    assert row.first_step == 11 and "T = 20 vs 10" in row.note
    assert rows_by(report).get(("up", "length")) is None  # the up stages are equal
    status, out, _ = run_cli(["crosscheck", paths[1], paths[0], "--no-explain"], capsys)
    assert status == 1 and "RESULT: differences found in down" in out


def test_weights_only_file_gets_coefficients_by_projection(exp, ref_path, tmp_path, capsys):
    path = tmp_path / "w.npz"
    save(path, weights_only(arrays_of(ref_path)))
    report = cc.crosscheck(path)
    assert report.status == 0
    for s in ("up", "down", "scratch"):
        for q in COEFFICIENT_KEYS:
            row = rows_by(report)[(s, q)]
            assert "projection" in row.note and not row.skipped and row.max_rel <= 1e-10
    # decompose writes them; they equal the tracked recursions of the original run
    status, out, _ = run_cli(["decompose", str(path), "--out", str(tmp_path / "d.npz")], capsys)
    assert status == 0 and "up, down, scratch" in out
    traj = load(tmp_path / "d.npz", require_coefficients=True)
    assert traj.provenance["coefficients_by_projection"] == ["down", "scratch", "up"]
    for s, stage in exp.stages.items():
        for q in COEFFICIENT_KEYS:
            tracked = getattr(stage, q)
            err = np.abs(traj.get(s, q) - tracked).max() / np.abs(tracked).max()
            assert err <= 1e-10, (s, q, err)
    # in place
    status, _, _ = run_cli(["decompose", str(path)], capsys)
    assert status == 0 and all(load(path).has_coefficients.values())
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".part")]


@pytest.mark.parametrize(
    "stage,k,coefficients",
    [("up", 1, True), ("down", 2, True), ("scratch", 4, True), ("down", 3, False)],
)
def test_perturbed_weight_is_caught_at_its_step(ref_path, tmp_path, stage, k, coefficients):
    arrays = arrays_of(ref_path)
    if not coefficients:
        arrays = weights_only(arrays)
    steps = arrays[f"{stage}/steps"]
    W = arrays[f"{stage}/W"].copy()
    trainable = arrays[f"{stage}/trainable"]
    j, r = np.argwhere(trainable)[-1]
    W[k, j, r, 5] += 1e-6 * np.abs(W[k]).max()
    arrays[f"{stage}/W"] = W
    path = tmp_path / "bad.npz"
    save(path, arrays)
    report = cc.crosscheck(path, explain=False)
    assert report.status == 1
    rows = rows_by(report)
    assert rows[(stage, "W")].first_step == steps[k]
    assert rows[(stage, "W")].max_rel == pytest.approx(1e-6, rel=1e-3)
    assert rows[(stage, "loss")].ok  # the file's loss was not touched
    for q in COEFFICIENT_KEYS:
        # tracked coefficients in the file are untouched; projected ones see the change
        # in the noise directions (rho) at exactly that snapshot
        if coefficients:
            assert rows[(stage, q)].ok
    if not coefficients:
        assert (
            rows[(stage, "rho_bar")].first_step == steps[k]
            or rows[(stage, "rho_under")].first_step == steps[k]
        )
    others = [r for r in report.rows if r.stage != stage]
    assert others and all(r.ok for r in others)
    assert report.failed_stages() == [stage]


def test_float32_stored_file_is_usable(ref_path, tmp_path):
    arrays = {
        k: (v.astype(np.float32) if v.dtype == np.float64 else v)
        for k, v in weights_only(arrays_of(ref_path)).items()
    }
    save(tmp_path / "f32.npz", arrays)
    report = cc.crosscheck(tmp_path / "f32.npz", stages=["up"], strict_precision=True)
    # the replay starts from the stored (rounded) inputs; the stored W was rounded after
    rows = rows_by(report)
    assert report.status == 1 and 1e-9 < rows[("up", "W")].max_rel < 1e-5
    assert rows[("up", "W")].first_step > 0  # snapshot 0 is storage rounding
    ex = report.explanations["up"]
    assert ex["baseline"]["name"] == "reference" and ex["float32_file"]
    # float64 dynamics rounded on output: the reference itself agrees at storage precision
    assert ex["matches"][0] == "reference" and ex["explanation"] == []


def test_different_inputs_are_reported(ref_path, tmp_path, capsys):
    arrays = arrays_of(ref_path)
    arrays["down/eta"] = np.float64(0.5)
    save(tmp_path / "other.npz", arrays)
    status, out, _ = run_cli(["crosscheck", str(tmp_path / "other.npz"), ref_path], capsys)
    assert status == 1
    assert "the inputs differ (eta)" in out
    assert "explain down: the two files' inputs differ" in out


def test_only_coefficients_differ(ref_path, tmp_path):
    arrays = arrays_of(ref_path)
    arrays["up/gamma"] = arrays["up/gamma"] * 1.01
    save(tmp_path / "g.npz", arrays)
    report = cc.crosscheck(tmp_path / "g.npz")
    assert report.status == 1
    assert not rows_by(report)[("up", "gamma")].ok
    assert "only the coefficients differ" in report.explanations["up"]["skipped"]


def test_json_report(ref_path, tmp_path, capsys):
    status, _, _ = run_cli(["crosscheck", ref_path, "--json", str(tmp_path / "r.json")], capsys)
    data = json.loads((tmp_path / "r.json").read_text())
    assert status == 0 and data["agree"] and len(data["rows"]) == 15


# ---------------------------------------------------------------------------
# unusable input: exit 2 with one clear line
# ---------------------------------------------------------------------------


def _broken(arrays, how):
    a = dict(arrays)
    if how == "missing":
        del a["down/W"]
        return a, "down/W is missing"
    if how == "shape":
        a["up/W"] = a["up/W"][:, :, :, :-1]
        return a, "up/W has shape"
    if how == "version":
        a["format_version"] = np.int64(2)
        return a, "format_version is 2"
    if how == "loss_length":
        a["scratch/loss"] = a["scratch/loss"][:-1]
        return a, "scratch/loss has shape"
    raise AssertionError(how)


@pytest.mark.parametrize("how", ["missing", "shape", "version", "loss_length"])
def test_unusable_file_exit_2(ref_path, tmp_path, capsys, how):
    arrays, message = _broken(arrays_of(ref_path), how)
    path = tmp_path / "broken.npz"
    save(path, arrays)
    for argv in (
        ["crosscheck", str(path)],
        ["crosscheck", ref_path, str(path)],
        ["decompose", str(path)],
    ):
        status, out, err = run_cli(argv, capsys)
        assert status == 2, argv
        assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_unreadable_and_mismatched_files_exit_2(ref_path, tmp_path, capsys):
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip file")
    status, _, err = run_cli(["crosscheck", str(junk)], capsys)
    assert status == 2 and "not a readable .npz" in err
    status, _, err = run_cli(["crosscheck", str(tmp_path / "absent.npz")], capsys)
    assert status == 2 and "no such file" in err
    other = run_experiment(CONFIG.replace(d=31))
    save(tmp_path / "d31.npz", other)
    status, _, err = run_cli(["crosscheck", str(tmp_path / "d31.npz"), ref_path], capsys)
    assert status == 2 and "describe different problems" in err and "up/X" in err
    status, _, err = run_cli(["crosscheck", ref_path, "--rtol", "-1"], capsys)
    assert status == 2 and "tolerances" in err


def test_projection_impossible_is_reported_not_fatal(tmp_path, capsys):
    rng = np.random.default_rng(0)
    n, d = 5, 4  # n + S > d: the noise vectors cannot be independent
    xi = rng.standard_normal((n, d))
    y = np.array([1.0, -1, 1, -1, 1])
    mu = np.array([1.0, 0, 0, 0])
    task = Task(X=np.stack([y[:, None] * mu, xi], axis=1), y=y, y_clean=y, xi=xi, signals=mu[None])
    stage = train_stage(0.1 * rng.standard_normal((2, 2, d)), task, 0.5, 20, snapshots=3)
    arrays = {
        "format_version": np.int64(1),
        "config_json": np.str_("{}"),
        "provenance_json": np.str_("{}"),
    }
    arrays.update(weights_only(stage_arrays("up", stage)))
    save(tmp_path / "small.npz", arrays)
    report = cc.crosscheck(tmp_path / "small.npz")
    assert report.status == 0
    assert rows_by(report)[("up", "gamma")].skipped
    assert "not independent" in rows_by(report)[("up", "gamma")].note
    status, _, err = run_cli(["decompose", str(tmp_path / "small.npz")], capsys)
    assert status == 2 and "cannot be recovered by projection" in err


# ---------------------------------------------------------------------------
# explain mode: each variant produced on purpose and recognised
# ---------------------------------------------------------------------------


def _explained(path, stage):
    report = cc.crosscheck(path, stages=[stage], strict_precision=True)  # float32 named too
    assert report.status == 1
    return report.explanations[stage]


@pytest.mark.parametrize(
    "name,conv",
    [
        ("filter_sum", cc.Convention(filter_sum=True)),
        ("patch_mean", cc.Convention(patch_mean=True)),
        ("bias", cc.Convention(bias=True)),
        ("lr_scale", cc.Convention(lr_scale=2.0)),
        ("lr_scale", cc.Convention(lr_scale=0.37)),
        ("float32", cc.Convention(dtype="float32")),
        ("loss_with_decay", cc.Convention(loss_with_decay=True)),
    ],
)
def test_explain_names_the_variant(ref_path, tmp_path, name, conv):
    traj = load(ref_path)
    path = tmp_path / "variant.npz"
    save(path, cc.variant_arrays(traj, conv, stages=["down"]))
    ex = _explained(path, "down")
    assert ex["explanation"] == [name] and ex["matches"][0] == name
    if name == "loss_with_decay":  # the weights are the reference's: only the loss differs
        rows = rows_by(cc.crosscheck(path, stages=["down"], explain=False))
        assert rows[("down", "W")].ok and not rows[("down", "loss")].ok
    assert "relu_prime_1" in ex["pruned"]  # no exact zeros in this data
    best = ex["candidates"][0]
    if name == "lr_scale":
        assert best["note"].endswith(f"{conv.lr_scale:.12g}")
        assert best["W_max_rel"] <= 1e-10
    for r in ex["candidates"][1:]:
        if r["size"] <= 1 and name not in r["names"]:
            assert not r["agrees"], r["name"]


def test_lr_scale_estimated_from_a_step_one_snapshot(tmp_path):
    # with a snapshot at step 1 the estimate is the least-squares ratio, exact
    path, _ = _zero_init_file(tmp_path, None)
    save(tmp_path / "lr.npz", cc.variant_arrays(load(path), cc.Convention(lr_scale=0.37)))
    traj = load(tmp_path / "lr.npz", require_coefficients=False)
    assert traj.get("up", "steps")[1] == 1
    c, why = cc.estimate_lr_scale(traj.stage("up"))
    assert why is None and c == pytest.approx(0.37, rel=1e-12)
    assert _explained(tmp_path / "lr.npz", "up")["explanation"] == ["lr_scale"]


def test_stage_only_in_one_file_is_noted(ref_path, tmp_path):
    arrays = {k: v for k, v in arrays_of(ref_path).items() if not k.startswith("scratch/")}
    save(tmp_path / "two.npz", arrays)
    report = cc.crosscheck(tmp_path / "two.npz", ref_path)
    assert report.status == 0 and {r.stage for r in report.rows} == {"up", "down"}
    assert any("stage scratch is only in" in n for n in report.notes)


def _zero_init_file(tmp_path, conv):
    """A stage whose filter r = 0 of each class starts at 0: all its pre-activations
    are exactly 0 at step 0, where sigma'(0) decides whether it ever moves."""
    rng = np.random.default_rng(7)
    n, d, m = 6, 12, 2
    y_clean = np.array([1.0, -1, 1, -1, 1, -1])
    mu = np.zeros(d)
    mu[0] = 2.0
    xi = rng.standard_normal((n, d))
    xi[:, 0] = 0.0
    task = Task(
        X=np.stack([y_clean[:, None] * mu, xi], axis=1),
        y=y_clean,
        y_clean=y_clean,
        xi=xi,
        signals=mu[None],
    )
    W0 = 0.1 * rng.standard_normal((2, m, d))
    W0[:, 0] = 0.0
    stage = train_stage(W0, task, 0.8, 40, snapshots=[0, 1, 5, 20, 40])
    arrays = {
        "format_version": np.int64(1),
        "config_json": np.str_("{}"),
        "provenance_json": np.str_("{}"),
    }
    arrays.update(stage_arrays("up", stage))
    save(tmp_path / "zero.npz", arrays)
    if conv is None:
        return tmp_path / "zero.npz", stage
    save(tmp_path / "v.npz", cc.variant_arrays(load(tmp_path / "zero.npz"), conv))
    return tmp_path / "v.npz", stage


@pytest.mark.parametrize("name,value", [("relu_prime_1", 1.0), ("relu_prime_half", 0.5)])
def test_explain_names_relu_prime_at_zero(tmp_path, name, value):
    path, stage = _zero_init_file(tmp_path, cc.Convention(relu_prime_zero=value))
    # under the reference convention the zero filters never move
    assert np.all(stage.W[:, :, 0] == 0.0)
    ex = _explained(path, "up")
    assert ex["explanation"] == [name] and ex["matches"] == [name]
    assert "relu_prime_1" not in ex["pruned"]
    other = "relu_prime_half" if name == "relu_prime_1" else "relu_prime_1"
    tested = {r["name"]: r for r in ex["candidates"]}
    assert other in tested and not tested[other]["agrees"]


def test_zero_init_reference_file_replays(tmp_path):
    path, _ = _zero_init_file(tmp_path, None)
    assert cc.crosscheck(path).status == 0


def test_explain_steps_limits_the_replay(ref_path, tmp_path, capsys):
    save(
        tmp_path / "v.npz",
        cc.variant_arrays(load(ref_path), cc.Convention(patch_mean=True), stages=["up"]),
    )
    report = cc.crosscheck(tmp_path / "v.npz", explain_steps=20)
    ex = report.explanations["up"]
    assert ex["steps"] == 20 and ex["explanation"] == ["patch_mean"]
    status, out, err = run_cli(
        ["crosscheck", str(tmp_path / "v.npz"), "--explain-steps", "0"], capsys
    )
    assert status == 2 and "--explain-steps" in err


def test_explain_text_in_cli(ref_path, tmp_path, capsys):
    save(
        tmp_path / "v.npz",
        cc.variant_arrays(load(ref_path), cc.Convention(filter_sum=True), stages=["up"]),
    )
    status, out, _ = run_cli(["crosscheck", str(tmp_path / "v.npz")], capsys)
    assert status == 1
    assert "=> up matches the reference with: filter_sum (sum instead of 1/m over filters" in out
    status, out, _ = run_cli(["crosscheck", str(tmp_path / "v.npz"), "--no-explain"], capsys)
    assert status == 1 and "explain up:" not in out
