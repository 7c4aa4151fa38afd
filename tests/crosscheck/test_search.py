"""Cross-checking: explain's search over combinations of convention
variants, float32-aware judgement, the bias keys s/b0 and s/b, replay under
named conventions, snapshot 0 of float32 files, and patch roles (any patch
order, s/patch_role, inputs whose roles cannot be determined)."""

import numpy as np
import pytest
from crosscheck_common import CONFIG
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import permuted_problems

from refimpl import crosscheck as cc
from refimpl.cli import main
from refimpl.errors import PatchRoleError, TrajectoryError, UsageError
from refimpl.trajectory import COEFFICIENT_KEYS, load, save
from refimpl.transfer import run_experiment


@pytest.fixture(scope="module")
def ref_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("search") / "ref.npz"
    save(path, run_experiment(CONFIG))
    return str(path)


def rows_by(report):
    return {(r.stage, r.quantity): r for r in report.rows}


def variant_file(ref_path, path, conv, stage="down", b0=None):
    save(
        path,
        cc.variant_arrays(
            load(ref_path), conv, stages=[stage], b0=None if b0 is None else {stage: b0}
        ),
    )
    return path


def explained(path, stage="down", **kw):
    report = cc.crosscheck(path, stages=[stage], **kw)
    assert report.status == 1
    return report.explanations[stage]


# ---------------------------------------------------------------------------
# combinations
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec",
    [
        "filter_sum,patch_mean",
        "filter_sum,float32",
        "patch_mean,bias",
        "filter_sum,lr_scale=0.5",
        "patch_mean,float32,loss_with_decay",
        "filter_sum,patch_mean,bias,float32",
    ],
)
def test_explain_names_a_combination(ref_path, tmp_path, spec):
    conv = cc.parse_convention(spec)
    ex = explained(variant_file(ref_path, tmp_path / "v.npz", conv))
    assert ex["explanation"] == conv.names()
    assert ex["matches"][0] == conv.label()
    best = ex["candidates"][0]
    assert best["agrees"] and best["name"] == conv.label()
    # no smaller set agrees, and the single departures alone do not
    assert all(r["size"] >= len(conv.names()) for r in ex["candidates"] if r["agrees"])
    assert not ex["baseline"]["agrees"]
    text = "\n".join(cc.format_explanation("down", ex))
    assert f"=> down matches the reference with: {' + '.join(conv.names())}" in text


@settings(max_examples=8)
@given(
    st.sets(st.sampled_from(["filter_sum", "patch_mean", "bias", "lr_scale=2"]), min_size=1),
    st.booleans(),
)
def test_explain_names_any_drawn_combination(ref_path, tmp_path_factory, names, float32):
    conv = cc.parse_convention(sorted(names) + (["float32"] if float32 else []))
    path = variant_file(ref_path, tmp_path_factory.mktemp("h") / "v.npz", conv, stage="up")
    ex = explained(path, stage="up")
    assert ex["explanation"] == conv.names()


def test_screening_on_a_prefix(ref_path, tmp_path):
    """A long stage is screened on a prefix; the full replays are few and the
    answer the same as without screening."""
    cfg = CONFIG.replace(steps_up=400, snapshots=9)
    path = tmp_path / "long.npz"
    save(path, run_experiment(cfg))
    conv = cc.parse_convention("filter_sum,bias")
    variant_file(path, tmp_path / "v.npz", conv, stage="up")
    ex = explained(tmp_path / "v.npz", stage="up")
    assert ex["screen_steps"] == 50 and ex["replayed"] < ex["tried"]
    assert ex["explanation"] == conv.names()
    assert explained(tmp_path / "v.npz", stage="up", explain_steps=100)["screen_steps"] is None


def test_pruning_reasons(ref_path, tmp_path):
    ex = explained(
        variant_file(ref_path, tmp_path / "v.npz", cc.Convention(patch_mean=True), stage="up"),
        stage="up",
    )
    assert "relu_prime_1" in ex["pruned"] and "exactly 0" in ex["pruned"]["relu_prime_1"]
    assert "float32" in ex["pruned"]  # a file of float64 numbers
    # lambda_up = 0.005 > 0: the penalty is not pruned for lambda = 0, but by
    # the loss at step 0, which includes no penalty
    assert "step 0" in ex["pruned"]["loss_with_decay"]
    assert "swap_classes" in ex["pruned"] and "filter_sum" in ex["pruned"]
    small = CONFIG.replace(m=2, weight_decay_up=0.0)  # m = P = 2
    save(tmp_path / "m2.npz", run_experiment(small))
    ex = explained(
        variant_file(tmp_path / "m2.npz", tmp_path / "w.npz", cc.Convention(bias=True), stage="up"),
        stage="up",
    )
    assert "lambda = 0" in ex["pruned"]["loss_with_decay"]
    assert "m = P = 2" in ex["pruned"]["filter_sum+patch_mean"]
    assert ex["explanation"] == ["bias"]


# ---------------------------------------------------------------------------
# float32: judged against the drift of the candidate's own float32 replay
# ---------------------------------------------------------------------------


def test_float32_candidates_judged_by_their_own_drift(ref_path, tmp_path):
    conv = cc.parse_convention("filter_sum,float32")
    ex = explained(variant_file(ref_path, tmp_path / "v.npz", conv))
    assert ex["float32_file"]
    best = ex["candidates"][0]
    assert best["rtol_W"] >= cc.FLOAT32_FACTOR * cc.EPS32 and best["W_max_rel"] > 1e-10
    # candidates in float64 arithmetic are judged at storage precision
    for r in ex["candidates"]:
        if "float32" not in r["names"]:
            assert r["rtol_W"] == pytest.approx(cc.EPS32)
    assert any("float32 arithmetic" in j for j in ex["judged"])
    assert any("storage precision" in j for j in ex["judged"])


def test_float32_snapshot_0_is_not_a_dynamics_difference(ref_path, tmp_path):
    path = variant_file(ref_path, tmp_path / "v.npz", cc.Convention(dtype="float32"), stage="up")
    traj = load(path, require_coefficients=False)
    assert not np.array_equal(traj.get("up", "W")[0], traj.get("up", "W0"))  # float32(W0)
    rows = rows_by(cc.crosscheck(path, explain=False, strict_precision=True))
    for q in ("W", "loss") + COEFFICIENT_KEYS:
        assert rows[("up", q)].first_step != 0, q
    assert rows[("up", "W")].first_step is not None  # float32 dynamics do differ
    # a genuine step-0 difference is still reported
    arrays = dict(traj.arrays)
    W = arrays["up/W"].copy()
    W[0, 0, 0, 0] += 1e-3
    arrays["up/W"] = W
    save(tmp_path / "bad.npz", arrays)
    assert rows_by(cc.crosscheck(tmp_path / "bad.npz", explain=False))[("up", "W")].first_step == 0


# ---------------------------------------------------------------------------
# the bias keys and --convention
# ---------------------------------------------------------------------------


def test_bias_with_initial_value(ref_path, tmp_path):
    m = CONFIG.m
    b0 = np.random.default_rng(3).uniform(-0.2, 0.2, (2, m))
    path = variant_file(ref_path, tmp_path / "b.npz", cc.Convention(bias=True), stage="up", b0=b0)
    traj = load(path, require_coefficients=False)
    assert np.array_equal(traj.stage("up").b0, b0) and traj.stage("up").b.shape[1:] == (2, m)
    report = cc.crosscheck(path)
    rows = rows_by(report)
    # the replay has no bias: b is not compared (never with zeros), W differs
    assert rows[("up", "b")].skipped and rows[("up", "b")].note == "b not stored in the reference"
    assert not rows[("up", "W")].ok
    ex = report.explanations["up"]
    assert ex["explanation"] == ["bias"] and "from the file's b0" in ex["description"]
    assert "b_max_rel" in ex["candidates"][0]
    # replayed under the named convention, W, loss and b agree
    again = cc.crosscheck(path, convention="bias")
    assert again.status == 0 and rows_by(again)[("up", "b")].max_rel <= 1e-12
    # a wrong b is caught even when W and loss agree
    arrays = dict(traj.arrays)
    arrays["up/b"] = arrays["up/b"] * (1 + 1e-6)
    save(tmp_path / "wrong_b.npz", arrays)
    bad = rows_by(cc.crosscheck(tmp_path / "wrong_b.npz", convention="bias"))
    assert not bad[("up", "b")].ok and bad[("up", "W")].ok


@pytest.mark.parametrize(
    "how,message",
    [
        ("b_without_b0", "up/b needs up/b0"),
        ("b0_shape", "up/b0 has shape"),
        ("b_shape", "up/b has shape"),
        ("b0_nan", "up/b0 has non-finite"),
    ],
)
def test_bias_keys_are_checked(ref_path, tmp_path, how, message):
    path = variant_file(ref_path, tmp_path / "b.npz", cc.Convention(bias=True), stage="up")
    arrays = dict(load(path, require_coefficients=False).arrays)
    if how == "b_without_b0":
        del arrays["up/b0"]
    elif how == "b0_shape":
        arrays["up/b0"] = arrays["up/b0"][:, :-1]
    elif how == "b_shape":
        arrays["up/b"] = arrays["up/b"][1:]
    else:
        arrays["up/b0"] = np.full_like(arrays["up/b0"], np.nan)
    save(tmp_path / "bad.npz", arrays)
    with pytest.raises(TrajectoryError, match=message):
        load(tmp_path / "bad.npz", require_coefficients=False)


def test_convention_replay_from_python_and_cli(ref_path, tmp_path, capsys):
    spec = "filter_sum,patch_mean,bias,float32"
    path = variant_file(ref_path, tmp_path / "v.npz", cc.parse_convention(spec))
    report = cc.crosscheck(path, stages=["down"], convention=spec)
    assert (
        report.status == 0 and "replay under filter_sum+patch_mean+bias+float32" in report.reference
    )
    rows = rows_by(report)
    assert rows[("down", "W")].max_rel > 1e-10  # float32 drift, judged as such
    assert any("float32" in n and "drift" in n for n in report.notes)
    for q in COEFFICIENT_KEYS:  # projected from both runs
        assert not rows[("down", q)].skipped
    assert cc.crosscheck(path, stages=["down"], convention=cc.parse_convention(spec)).status == 0
    assert cc.crosscheck(path, stages=["down"], convention="filter_sum,patch_mean").status == 1
    assert (
        main(["crosscheck", str(path), "--stage", "down", "--convention", spec, "--no-explain"])
        == 0
    )
    capsys.readouterr()
    status = main(["crosscheck", str(path), "--convention", "filter_sum,sideways"])
    _, err = capsys.readouterr()
    assert status == 2 and "unknown convention 'sideways'" in err and err.count("\n") == 1
    with pytest.raises(UsageError, match="cannot be combined"):
        cc.crosscheck(path, ref_path, convention="bias")


def test_parse_convention():
    assert cc.parse_convention("") == cc.Convention()
    assert cc.parse_convention(["filter_sum", "lr_scale=0.5", "relu_prime=1"]) == cc.Convention(
        filter_sum=True, lr_scale=0.5, relu_prime_zero=1.0
    )
    assert cc.parse_convention("relu_prime_half").relu_prime_zero == 0.5
    for bad in ("lr_scale=-1", "lr_scale=x", "float16", "bias=1"):
        with pytest.raises(UsageError):
            cc.parse_convention(bad)


# ---------------------------------------------------------------------------
# patch roles
# ---------------------------------------------------------------------------


def _permuted_file(prob, path, with_key):
    """The permuted problem trained by another implementation (the variant GD
    with refimpl's conventions), weights and projected coefficients."""
    t = prob.permuted
    steps = np.unique(np.linspace(0, prob.steps, 4).astype(np.int64))
    run = cc.variant_train(
        prob.W0, t.X, t.y, prob.eta, prob.weight_decay, prob.trainable, prob.steps, steps
    )
    stage = {
        "X": t.X,
        "y": t.y,
        "y_clean": t.y_clean,
        "xi": t.xi,
        "signals": t.signals,
        "W0": prob.W0,
        "eta": np.float64(prob.eta),
        "weight_decay": np.float64(prob.weight_decay),
        "trainable": prob.trainable,
        "steps": steps,
        "W": run.W,
        "loss": run.loss,
    }
    coef = cc.recover_coefficients(
        run.W, prob.W0, steps, prob.trainable, prob.eta, prob.weight_decay, t.signals, t.xi, t.y
    )
    stage.update(zip(COEFFICIENT_KEYS, coef, strict=True))
    if with_key:
        stage["patch_role"] = prob.roles
    arrays = {
        "format_version": np.int64(1),
        "config_json": np.str_("{}"),
        "provenance_json": np.str_("{}"),
    }
    arrays.update({f"up/{k}": np.asarray(v) for k, v in stage.items()})
    save(path, arrays)
    return path


@settings(max_examples=25)
@given(permuted_problems(max_steps=30), st.booleans())
def test_any_patch_order_agrees_with_coefficients(tmp_path_factory, prob, with_key):
    path = _permuted_file(prob, tmp_path_factory.mktemp("perm") / "p.npz", with_key)
    report = cc.crosscheck(path, explain=False)
    assert report.status == 0, report.format()
    for q in COEFFICIENT_KEYS:
        row = rows_by(report)[("up", q)]
        assert not row.skipped and row.max_rel <= 1e-10, (q, row)
    if with_key:
        assert np.array_equal(load(path).stage("up").roles(), prob.roles)


def test_patch_role_key_is_checked_against_the_data(tmp_path):
    from hypothesis import find

    prob = find(permuted_problems(max_steps=5), lambda p: p.task.n >= 3 and p.layout == "joint")
    path = _permuted_file(prob, tmp_path / "p.npz", with_key=True)
    arrays = dict(load(path).arrays)
    wrong = prob.roles.copy()
    wrong[1] = wrong[1][::-1]  # input 1: roles swapped
    arrays["up/patch_role"] = wrong
    save(tmp_path / "wrong.npz", arrays)
    with pytest.raises(PatchRoleError, match=r"up/patch_role.*\b1\b"):
        load(tmp_path / "wrong.npz")
    arrays["up/patch_role"] = prob.roles.astype(float)
    save(tmp_path / "float.npz", arrays)
    with pytest.raises(TrajectoryError, match="up/patch_role has dtype"):
        load(tmp_path / "float.npz")


def test_undeterminable_roles_are_refused_naming_the_inputs(ref_path, tmp_path, capsys):
    arrays = dict(load(ref_path).arrays)
    X = arrays["up/X"].copy()
    X[4, 0] *= 1.5  # input 4: no patch holds the signal
    arrays["up/X"] = X
    arrays = {k: v for k, v in arrays.items() if not k.endswith(COEFFICIENT_KEYS)}
    save(tmp_path / "odd.npz", arrays)
    with pytest.raises(PatchRoleError, match=r"\b4\b"):
        cc.crosscheck(tmp_path / "odd.npz")
    status = main(["crosscheck", str(tmp_path / "odd.npz")])
    _, err = capsys.readouterr()
    assert status == 2 and "4" in err and err.count("\n") == 1
    assert main(["decompose", str(tmp_path / "odd.npz")]) == 2
    assert "4" in capsys.readouterr().err
