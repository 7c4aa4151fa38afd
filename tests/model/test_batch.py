"""The batched trainer (refimpl/batch.py): many runs in one compiled call,
in the basis of the distinct patch vectors (docs/model.md §9), and its
reduced estimator (§6.3).

- against train_stage(engine="weight") on every run of drawn batches: final
  weights, the loss at every step, the last step, the stopping rule and the
  coefficients read off the basis coefficients, to 1e-12 relative;
- against a plain-numpy twin (below), including patches in any order;
- run_single_batch against the upstream stage of run_experiment (the same
  streams, so the same draws) and measure_single;
- its estimator against refimpl.evaluation on the same weights and draws;
- a run's numbers do not depend on the other runs of its batch.
"""

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from refimpl import batch
from refimpl.config import Config
from refimpl.data import noise_basis, sample_task, signal_vectors, task_signals
from refimpl.errors import DivergenceError
from refimpl.evaluation import estimate_test_error
from refimpl.lab.measures import measure_single
from refimpl.train import train_stage
from refimpl.transfer import run_experiment, streams


def no_near_ties(stage, X):
    """True unless some pre-activation of the path comes within 1e-9
    (relative) of 0 without being 0: there the sign of ReLU' is a matter of
    rounding, and two exact computations may part ways (the weight and Gram
    engines of train_stage alike). Exact zeros (zero patches) are fine."""
    A = np.einsum("ipd,tjrd->tipjr", X, stage.W)
    scale = (
        np.linalg.norm(X, axis=2)[None, :, :, None, None]
        * np.linalg.norm(stage.W, axis=3)[:, None, None, :, :]
    )
    rel = np.abs(A)[A != 0] / scale[A != 0]
    return rel.size == 0 or rel.min() > 1e-9


def assert_close(actual, expected, rtol):
    actual, expected = np.asarray(actual, float), np.asarray(expected, float)
    assert actual.shape == expected.shape
    scale = max(float(np.abs(expected).max(initial=0.0)), 1e-300)
    err = float(np.abs(actual - expected).max(initial=0.0))
    assert err <= rtol * scale, f"max error {err:.3e} > {rtol:.0e} * {scale:.3e}"


# ----------------------------------------------------------------------
# the numpy twin: the same GD in the basis V, written plainly


def twin_train(V, W0, index, sign, y, eta, steps, weight_decay=0.0, epsilon=0.0):
    """GD of one run with W = s W0 + Bv V: returns (Bv (2m, r), s, losses,
    last, stopped). Patch p of input i is sign[i, p] * V[index[i, p]]."""
    two_m, r = 2 * W0.shape[1], V.shape[0]
    m = two_m // 2
    n, P = index.shape
    j = np.repeat([1.0, -1.0], m)
    Q, K0 = V @ V.T, V @ W0.reshape(two_m, -1).T
    Bv, s, losses = np.zeros((two_m, r)), 1.0, []
    decay, t = 1.0 - eta * weight_decay, 0
    while True:
        Av = Q @ Bv.T + s * K0  # <w_k, V_a>, (r, 2m)
        A = sign[:, :, None] * Av[index]  # (n, P, 2m)
        f = (np.maximum(A, 0.0) * j).sum(axis=(1, 2)) / m
        z = y * f
        losses.append(float(np.mean(np.logaddexp(0.0, -z))))
        if epsilon > 0 and losses[-1] <= epsilon:
            return Bv, s, np.array(losses), t, True
        if t == steps:
            return Bv, s, np.array(losses), t, False
        lprime = -1.0 / (1.0 + np.exp(z))
        C = (lprime * y)[:, None, None] * (A > 0) * j / (n * m)  # (n, P, 2m)
        D = np.zeros((r, two_m))
        np.add.at(D, index.ravel(), (sign[:, :, None] * C).reshape(n * P, two_m))
        Bv = decay * Bv - eta * D.T
        t += 1
        s = decay**t


# ----------------------------------------------------------------------
# drawn batches


def gram_inputs(task, W0, perm=None):
    """(Z, index, sign) of a task whose patches are yhat_i sig_s and xi_i,
    optionally permuted per input (perm (n, P))."""
    S, n = task.signals.shape[0], task.n
    index = np.empty((n, S + 1), np.int64)
    index[:, :S] = np.arange(S)
    index[:, S] = S + np.arange(n)
    sign = np.ones((n, S + 1))
    sign[:, :S] = task.y_clean[:, None]
    if perm is not None:
        index = np.take_along_axis(index, perm, axis=1)
        sign = np.take_along_axis(sign, perm, axis=1)
    Z = np.concatenate([task.signals, task.xi, W0.reshape(-1, W0.shape[2])])
    return Z, index, sign


@st.composite
def batches(draw):
    n = draw(st.integers(1, 8))
    m = draw(st.integers(1, 4))
    layout = draw(st.sampled_from(("joint", "split")))
    d = n + 3 + draw(st.integers(0, 30))
    u, v = draw(st.sampled_from((0.0, 0.7, 2.0))), draw(st.sampled_from((0.0, 0.5, 1.5)))
    runs = draw(st.integers(1, 3))
    seeds = draw(st.lists(st.integers(0, 2**32 - 1), min_size=runs, max_size=runs))
    per_run = st.tuples(
        st.sampled_from((0.05, 0.3, 1.0)),
        st.integers(0, 120),
        st.sampled_from((0.0, 0.0, 0.01)),
        st.sampled_from((0.0, 0.0, 0.2, 0.5)),
        st.sampled_from((0.5, 1.0)),
        st.sampled_from((0.0, 0.2)),
    )
    params = draw(st.lists(per_run, min_size=runs, max_size=runs))
    return n, m, layout, d, u, v, seeds, params


def draw_runs(n, m, layout, d, u_norm, v_norm, seeds, params):
    u, v, _ = signal_vectors(d, u_norm, v_norm, 0.0)
    out = []
    for seed, (eta, steps, wd, eps, sigma_p, flip) in zip(seeds, params, strict=True):
        rng = np.random.default_rng(seed)
        task = sample_task(rng, n, u, v, sigma_p, flip, layout)
        W0 = 0.3 * rng.standard_normal((2, m, d))
        out.append((task, W0, dict(eta=eta, steps=steps, weight_decay=wd, epsilon=eps)))
    return out


@given(b=batches())
def test_batch_matches_train_stage_on_every_run(b):
    """Final W, the loss at every step, last step, stopping and the
    coefficients of every run of a batch equal the weight engine's to 1e-12."""
    runs = draw_runs(*b)
    Zs, index, signs = zip(*(gram_inputs(task, W0) for task, W0, _ in runs), strict=True)
    G = np.stack([Z @ Z.T for Z in Zs])
    p = {k: [kw[k] for _, _, kw in runs] for k in ("eta", "steps", "weight_decay", "epsilon")}
    res = batch.train_batch(
        G,
        index[0],
        np.stack(signs),
        np.stack([t.y for t, _, _ in runs]),
        p["eta"],
        p["steps"],
        p["weight_decay"],
        p["epsilon"],
    )
    S = runs[0][0].signals.shape[0]
    r = S + runs[0][0].n
    Ws = res.weights(np.stack([Z[:r] for Z in Zs]), np.stack([W0 for _, W0, _ in runs]))
    for k, (task, W0, kw) in enumerate(runs):
        stage = train_stage(W0, task, snapshots=kw["steps"] + 1, engine="weight", **kw)
        assume(no_near_ties(stage, task.X))
        assert_close(Ws[k], stage.W_final, 1e-12)
        assert res.last[k] == stage.T and res.stopped[k] == stage.stopped and res.finite[k]
        np.testing.assert_allclose(res.loss[k, : stage.T + 1], stage.loss, rtol=1e-12, atol=0)
        assert np.all(np.isnan(res.loss[k, stage.T + 1 :]))
        # gamma = j |sig_s|^2 Bv[k, s], rho_i = |xi_i|^2 Bv[k, S + i] (docs/model.md §9.3)
        j = np.array([1.0, -1.0])[:, None, None]
        Bv = res.Bt[k].T.reshape(2, W0.shape[1], r)
        gamma = j * np.sum(task.signals**2, axis=1) * Bv[:, :, :S]
        rho = np.sum(task.xi**2, axis=1) * Bv[:, :, S:]
        same = task.y[None, None, :] == j
        assert_close(gamma, stage.gamma[-1], 1e-11)
        assert_close(np.where(same, rho, 0.0), stage.rho_bar[-1], 1e-11)
        assert_close(np.where(same, 0.0, rho), stage.rho_under[-1], 1e-11)


@given(b=batches(), data=st.data())
def test_batch_matches_the_numpy_twin_with_patches_in_any_order(b, data):
    """The compiled loop equals the twin; the patches of every input may come
    in any order (Kou et al.'s data swap them), the index shared by the batch."""
    runs = draw_runs(*b)
    n, P = runs[0][0].n, runs[0][0].signals.shape[0] + 1
    perm = np.array(data.draw(st.lists(st.permutations(range(P)), min_size=n, max_size=n)))
    Zs, index, signs = zip(*(gram_inputs(task, W0, perm) for task, W0, _ in runs), strict=True)
    G = np.stack([Z @ Z.T for Z in Zs])
    p = {k: [kw[k] for _, _, kw in runs] for k in ("eta", "steps", "weight_decay", "epsilon")}
    res = batch.train_batch(
        G,
        index[0],
        np.stack(signs),
        np.stack([t.y for t, _, _ in runs]),
        p["eta"],
        p["steps"],
        p["weight_decay"],
        p["epsilon"],
    )
    r = P - 1 + n
    Ws = res.weights(np.stack([Z[:r] for Z in Zs]), np.stack([W0 for _, W0, _ in runs]))
    for k, (task, W0, kw) in enumerate(runs):
        X = np.take_along_axis(task.X, perm[:, :, None], axis=1)
        stage = train_stage(
            W0,
            type(task)(X=X, y=task.y, y_clean=task.y_clean, xi=task.xi, signals=task.signals),
            snapshots=kw["steps"] + 1,
            engine="weight",
            track=False,
            **kw,
        )
        assume(no_near_ties(stage, X))
        assert_close(Ws[k], stage.W_final, 1e-12)
        Bv, s, losses, last, stopped = twin_train(Zs[k][:r], W0, index[0], signs[k], task.y, **kw)
        assert res.last[k] == last and res.stopped[k] == stopped
        assert_close(res.Bt[k].T, Bv, 1e-12)
        assert res.s[k] == s
        np.testing.assert_allclose(res.loss[k, : last + 1], losses, rtol=1e-12, atol=1e-300)


# ----------------------------------------------------------------------
# run_single_batch: the single-task run of measure_single


def small(**kw):
    values = dict(
        d=60,
        m=3,
        n_up=8,
        n_down=1,
        u_norm=1.5,
        v_up_norm=0.5,
        flip_up=0.1,
        eta=0.2,
        sigma_0=0.05,
        steps_up=40,
        steps_down=0,
        n_test=600,
        snapshots=2,
    )
    values.update(kw)
    return Config.from_dict(values)


def test_streams_are_those_of_run_experiment():
    for name in batch.STREAM_INDEX:
        a = batch._rng(12345, name).standard_normal(7)
        assert np.array_equal(a, streams(12345)[name].standard_normal(7))


def test_draws_are_those_of_sample_task():
    for layout, u, v in (("joint", 2.0, 0.0), ("split", 1.0, 0.5), ("joint", 0.0, 0.0)):
        c = small(layout=layout, u_norm=u, v_up_norm=v, d=30)
        signals, basis = batch._task_geometry(c, {})
        Z = np.empty((c.n_patches - 1 + c.n_up + 2 * c.m, c.d))
        y, y_clean = batch._draw(c, 99, signals, basis, Z)
        rng = streams(99)
        uu, vv, _ = signal_vectors(c.d, u, v, c.v_down_norm, c.v_cos)
        task = sample_task(rng["data_up"], c.n_up, uu, vv, c.sigma_p_up, c.flip_up, layout)
        W0 = c.sigma_0 * rng["init_up"].standard_normal((2, c.m, c.d))
        S = signals.shape[0]
        assert np.array_equal(y, task.y) and np.array_equal(y_clean, task.y_clean)
        assert np.array_equal(Z[:S], task.signals) and np.array_equal(Z[S : S + c.n_up], task.xi)
        assert np.array_equal(Z[S + c.n_up :], W0.reshape(2 * c.m, c.d))


@pytest.mark.parametrize("layout", ("joint", "split"))
def test_run_single_batch_is_the_upstream_stage_of_run_experiment(layout):
    """The same data, initialisation and test draws as run_experiment: W, loss
    and steps to rounding; the test error equal (identical draws) for
    almost every run, and statistically equal for all."""
    configs = [
        small(layout=layout, u_norm=u, flip_up=f, epsilon=e, weight_decay_up=wd)
        for u in (0.0, 0.8, 2.5)
        for f in (0.0, 0.2)
        for e, wd in ((0.0, 0.0), (0.3, 0.01))
    ]
    seeds = list(range(100, 100 + len(configs)))
    out = batch.run_single_batch(configs, seeds, keep_weights=True)
    equal = 0
    for k, (c, seed) in enumerate(zip(configs, seeds, strict=True)):
        exp = run_experiment(c.replace(seed=seed, engine="weight"))
        up = exp.stages["up"]
        assert_close(out["W"][k], up.W_final, 1e-12)
        assert out["steps"][k] == up.T and out["stopped"][k] == up.stopped
        assert out["loss"][k] == pytest.approx(float(up.loss[-1]), rel=1e-12)
        ref = exp.test_error("up")
        equal += out["err"][k] == ref["clean_error"]
        assert abs(out["err"][k] - ref["clean_error"]) <= 5 * np.sqrt(2) * max(
            ref["clean_error_se"], 1.0 / c.n_test
        )
        assert out["noisy"][k] == pytest.approx(c.flip_up + (1 - 2 * c.flip_up) * out["err"][k])
    assert equal >= 0.9 * len(configs)


def test_run_single_batch_gives_measure_single():
    configs = [small(u_norm=u, d=d) for u in (0.5, 1.0, 3.0) for d in (40, 60)]
    seeds = [7 * k + 1 for k in range(len(configs))]
    out = batch.run_single_batch(configs, seeds)
    ref = [measure_single(c.replace(seed=s)) for c, s in zip(configs, seeds, strict=True)]
    assert sum(out["err"][k] == r["err"] for k, r in enumerate(ref)) >= len(ref) - 1
    for k, r in enumerate(ref):
        assert out["loss"][k] == pytest.approx(r["loss"], rel=1e-12)
        assert out["steps"][k] == r["steps"] and out["stopped"][k] == r["stopped"]


def test_a_run_does_not_depend_on_its_batch():
    """Bitwise the same numbers alone, in a batch, and in another order."""
    configs = [small(u_norm=u, eta=eta) for u, eta in ((0.5, 0.2), (2.0, 0.1), (1.0, 0.5))]
    seeds = [3, 4, 5]
    together = batch.run_single_batch(configs, seeds, keep_weights=True)
    reordered = batch.run_single_batch(configs[::-1], seeds[::-1], keep_weights=True)
    for k in range(3):
        alone = batch.run_single_batch([configs[k]], [seeds[k]], keep_weights=True)
        for key in ("err", "err_se", "loss", "steps"):
            assert together[key][k] == alone[key][0] == reordered[key][2 - k]
        assert np.array_equal(together["W"][k], alone["W"][0])


def test_huge_weights_and_divergence():
    """Weights near the float limit are scored as evaluation scores them
    (scaled by a power of two); a run that leaves the finite numbers (where
    train_stage raises DivergenceError) is a missing value, not an error."""
    huge, gone = small(eta=1e306), small(sigma_0=1e307)
    with pytest.raises(DivergenceError):
        measure_single(gone.replace(seed=1))
    out = batch.run_single_batch([huge, gone, small()], [1, 1, 2])
    assert out["err"][0] == measure_single(huge.replace(seed=1))["err"]
    assert not out["finite"][1] and np.isnan(out["err"][1]) and np.isnan(out["noisy"][1])
    assert out["finite"][2] and np.isfinite(out["err"][2])


# ----------------------------------------------------------------------
# the estimator alone


@pytest.mark.parametrize(
    "layout,u,v",
    [("joint", 2.0, 0.0), ("joint", 0.0, 0.0), ("split", 1.0, 0.7), ("joint", 1.0, 1.0)],
)
def test_estimator_is_evaluations_on_the_same_weights_and_draws(layout, u, v):
    """Given W, the estimator equals estimate_test_error with the same
    generator (draws in blocks of 4096, as there: n_test > 4096 checked)."""
    d, m = 50, 4
    uu, vv, _ = signal_vectors(d, u, v, 0.0)
    basis, sig = noise_basis(uu, vv), task_signals(uu, vv, layout)
    for seed in range(6):
        W = np.random.default_rng(seed).standard_normal((2, m, d)) * (1 + seed)
        W[:, :, 0] += np.random.default_rng(seed + 50).standard_normal((2, m))
        Wf = W.reshape(2 * m, d)
        PW = np.zeros((1, 2 * m, 2))
        PW[0, :, : basis.shape[0]] = Wf @ basis.T
        n_test = 5000
        gen = np.random.default_rng(seed + 100)
        mean, se = batch.reduced_errors(
            (Wf @ Wf.T)[None],
            PW,
            (Wf @ sig.T)[None],
            0.8,
            n_test,
            lambda b, out, gen=gen: gen.standard_normal(out=out),
        )
        ref = estimate_test_error(
            W, uu, vv, 0.8, 0.1, layout, n_test, np.random.default_rng(seed + 100)
        )
        assert mean[0] == ref["clean_error"]
        assert se[0] == pytest.approx(ref["clean_error_se"], rel=1e-12, abs=1e-15)


def test_runs_of_one_stream_share_their_draws():
    """``streams``: runs with equal keys are scored on rows drawn once, and
    each run's estimate equals the run scored alone on its stream's draws."""
    d, m, n_test = 40, 3, 5000  # two blocks of draws
    uu, vv, _ = signal_vectors(d, 1.0, 1.0, 0.0)
    basis, sig = noise_basis(uu, vv), task_signals(uu, vv, "joint")
    W = np.random.default_rng(1).standard_normal((4, 2 * m, d))
    W[:, :, 0] += 1.0
    WWt, sig_pre = W @ W.transpose(0, 2, 1), W @ sig.T
    PW = np.zeros((4, 2 * m, 2))
    PW[:, :, : basis.shape[0]] = W @ basis.T
    streams, drawn = ["a", "b", "a", "a"], []
    gens = {k: np.random.default_rng(ord(k)) for k in set(streams)}

    def draw(b, out):
        drawn.append(b)
        gens[streams[b]].standard_normal(out=out)

    mean, se = batch.reduced_errors(WWt, PW, sig_pre, 0.8, n_test, draw, streams)
    assert drawn == [0, 1, 0, 1]  # stream "a" drawn by run 0 only, per block
    for b in range(4):
        gen = np.random.default_rng(ord(streams[b]))
        alone = batch.reduced_errors(
            WWt[b : b + 1],
            PW[b : b + 1],
            sig_pre[b : b + 1],
            0.8,
            n_test,
            lambda _, out, g=gen: g.standard_normal(out=out),
        )
        assert (mean[b], se[b]) == (alone[0][0], alone[1][0])
    assert len(set(mean)) > 1  # the runs differ, the shared draws do not hide it
    with pytest.raises(ValueError, match="one stream key per run"):
        batch.reduced_errors(WWt, PW, sig_pre, 0.8, n_test, draw, streams[:3])
    none = batch.reduced_errors(WWt[:0], PW[:0], sig_pre[:0], 0.8, n_test, draw, [])
    assert none[0].shape == none[1].shape == (0,)
