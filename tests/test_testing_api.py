"""The testing API, refimpl.testing, used as people use it in their own test
suites: a user's torch, JAX or numpy model checked with the assertions (a
right one passes, each usual mistake is named), forward's parts against the
numpy twin, the strategies (every draw valid and usable), the package
without hypothesis, and the README's worked example, run as written."""

import configparser
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from crosscheck_common import needs_jax, needs_torch
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import dyadic_problems, gaussian_problems, tiny_config

from refimpl import naive
from refimpl.config import Config
from refimpl.crosscheck import jax_client
from refimpl.errors import ConfigError
from refimpl.network import forward
from refimpl.testing import (
    assert_forward_matches,
    assert_gradient_matches,
    assert_step_matches,
    assert_trajectory_matches,
    configs,
    problems,
    tasks,
    weights,
)
from refimpl.train import train_stage
from refimpl.trajectory import load, save
from refimpl.transfer import run_experiment

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# a small hand-made problem (Gaussian, no exact zeros) and a mask with frozen filters
RNG = np.random.default_rng(7)
W = RNG.standard_normal((2, 3, 5))
X = RNG.standard_normal((4, 2, 5))
Y = np.array([1.0, -1.0, 1.0, -1.0])
MASK = np.array([[True, False, True], [True, True, False]])


def np_forward(W, X, filter_mean=True, patch_sum=True, classes=(0, 1)):
    """A user's numpy network, with switches for the usual mistakes."""
    relu = np.maximum(np.einsum("jrd,ipd->jrip", W, X), 0.0)
    F = relu.sum(axis=1) / (W.shape[1] if filter_mean else 1)  # (2, n, P)
    F = F.sum(axis=2) if patch_sum else F.mean(axis=2)
    return F[classes[0]] - F[classes[1]]


def message(call, *args, **kwargs):
    with pytest.raises(AssertionError) as info:
        call(*args, **kwargs)
    return str(info.value)


# ---------------------------------------------------------------------------
# forward(..., parts=True)


@given(dyadic_problems())
def test_forward_parts_are_exact_on_dyadic_inputs(problem):
    W, X, _ = problem
    parts = forward(W, X, parts=True)
    pre = naive.preactivations(W, X)  # the numpy twin: exact on dyadic entries
    assert np.array_equal(parts.f, forward(W, X))
    assert np.array_equal(parts.pre, pre)
    assert np.array_equal(parts.active, pre > 0)
    F = np.maximum(pre, 0).sum(axis=(1, 3)) / W.shape[1]
    assert np.array_equal(parts.F_plus, F[0]) and np.array_equal(parts.F_minus, F[1])


@given(gaussian_problems())
def test_forward_parts_match_the_numpy_twin(problem):
    W, X, _ = problem
    parts = forward(W, X, parts=True)
    scale = np.abs(W).max() * np.abs(X).max() * W.shape[2] * X.shape[1]
    np.testing.assert_allclose(parts.pre, naive.preactivations(W, X), atol=1e-13 * scale)
    F = np.maximum(naive.preactivations(W, X), 0).sum(axis=(1, 3)) / W.shape[1]
    np.testing.assert_allclose(parts.F_plus, F[0], atol=1e-13 * scale)
    np.testing.assert_allclose(parts.F_minus, F[1], atol=1e-13 * scale)
    np.testing.assert_allclose(parts.F_plus - parts.F_minus, parts.f, atol=1e-13 * scale)
    assert np.array_equal(parts.f, forward(W, X))


def test_forward_default_return_is_unchanged():
    f = forward(W, X)
    assert type(f) is np.ndarray and f.shape == (4,)
    np.testing.assert_allclose(f, naive.forward(W, X), rtol=0, atol=1e-14)


# ---------------------------------------------------------------------------
# assert_forward_matches


def test_forward_right_numpy_model_passes():
    assert_forward_matches(np_forward, W, X)


@pytest.mark.parametrize(
    "mistake, name",
    [
        (dict(classes=(1, 0)), "the class order swapped"),
        (dict(filter_mean=False), "sum instead of 1/m over filters"),
        (dict(patch_sum=False), "mean instead of sum over patches"),
        (dict(filter_mean=False, classes=(1, 0)), "swapped (your W[0] is class -1"),
    ],
)
def test_forward_mistakes_are_named(mistake, name):
    text = message(assert_forward_matches, lambda W, X: np_forward(W, X, **mistake), W, X)
    assert "forward differs from refimpl.network.forward" in text
    assert "f: 4 of 4 entries differ" in text and "diagnosis: yours equals refimpl's with" in text
    assert name in text


def test_forward_two_logits_are_named():
    def logits(W, X):  # a model with two outputs [F_{+1}, F_{-1}], as for cross-entropy
        relu = np.maximum(np.einsum("jrd,ipd->jrip", W, X), 0.0)
        return relu.sum(axis=(1, 3)).T / W.shape[1]

    text = message(assert_forward_matches, logits, W, X)
    assert "f: shape (4, 2), refimpl's is (4,)" in text
    assert "two outputs [F_{+1}, F_{-1}] instead of f = F_{+1} - F_{-1}" in text


def test_forward_parts_as_a_dict_conv1d_layout_named():
    def conv1d_parts(W, X):  # pre-activations laid out as nn.Conv1d's output (n, 2m, P)
        pre = np.einsum("jrd,ipd->ijrp", W, X).reshape(X.shape[0], -1, X.shape[1])
        return {"pre": pre, "f": np_forward(W, X)}

    text = message(assert_forward_matches, conv1d_parts, W, X)
    assert "pre: shape (4, 6, 2), refimpl's is (2, 3, 4, 2)" in text
    assert "the layout [i, j, r, p]" in text and "  f:" not in text
    with pytest.raises(ConfigError, match="unknown parts \\['logits'\\]"):
        assert_forward_matches(lambda W, X: {"logits": 0}, W, X)


@needs_torch
def test_forward_torch_model_with_tensors():
    import torch

    def model(W, X):
        F = torch.relu(torch.einsum("jrd,ipd->jrip", W, X)).sum(dim=(1, 3)) / W.shape[1]
        return F[0] - F[1]

    Wt = torch.tensor(W, requires_grad=True)  # a parameter, as in a real model
    assert_forward_matches(model, Wt, torch.tensor(X))
    # float32: judged at float32's rtol, and a real mistake still named
    assert_forward_matches(model, Wt.float(), torch.tensor(X).float())
    text = message(
        assert_forward_matches, lambda W, X: 3 * model(W, X), Wt.float(), torch.tensor(X).float()
    )
    assert "note: your result is float32: judged at rtol 1e-05" in text
    assert "sum instead of 1/m over filters" in text


# ---------------------------------------------------------------------------
# assert_gradient_matches


def torch_gradient(W, X, y, reduce="mean", relu=None):
    import torch

    Wt = torch.tensor(np.asarray(W), requires_grad=True)
    Xt, yt = torch.tensor(np.asarray(X)), torch.tensor(np.asarray(y))
    pre = torch.einsum("jrd,ipd->jrip", Wt, Xt)
    act = torch.relu(pre) if relu is None else relu(pre)
    F = act.sum(dim=(1, 3)) / Wt.shape[1]
    losses = torch.nn.functional.softplus(-yt * (F[0] - F[1]))
    (losses.mean() if reduce == "mean" else losses.sum()).backward()
    return Wt.grad


@needs_torch
@given(problems(dyadic=True))
def test_gradient_torch_autograd_passes_on_exact_zeros(p):
    assert_gradient_matches(torch_gradient, p.W0, p.task.X, p.task.y)


@needs_torch
def test_gradient_sum_over_inputs_is_named():
    text = message(assert_gradient_matches, lambda *a: torch_gradient(*a, reduce="sum"), W, X, Y)
    assert "gradient differs from refimpl.network.gradient" in text
    assert "a sum instead of the mean over inputs (n x)" in text


def test_gradient_relu_prime_one_is_named():
    # <w_{+1}, x> = 0 exactly on patch 0: ReLU'(0) decides whether it counts
    Wz = np.array([[[1.0, 0.0]], [[0.0, 1.0]]])
    Xz = np.array([[[0.0, 1.0], [1.0, 1.0]]])
    yz = np.array([1.0])

    def relu_prime_one(W, X, y):  # a hand-written gradient with sigma'(0) = 1
        pre = naive.preactivations(W, X)
        dloss = naive.logistic_dloss(y * naive.forward(W, X))
        coef = (
            (pre >= 0) * (dloss * y)[None, None, :, None] * np.array([1, -1])[:, None, None, None]
        )
        return np.einsum("jrip,ipd->jrd", coef, X) / (X.shape[0] * W.shape[1])

    text = message(assert_gradient_matches, relu_prime_one, Wz, Xz, yz)
    assert "ReLU'(0) = 1" in text


def test_gradient_none_tried_says_so():
    text = message(assert_gradient_matches, lambda W, X, y: np.zeros((2, 3, 5)) + 1, W, X, Y)
    assert "none of the departures tried gives yours" in text


@needs_jax
def test_gradient_jax_arrays_accepted():
    import jax

    with jax.enable_x64(True):
        grad = jax.grad(jax_client.data_loss)
        assert_gradient_matches(grad, jax.numpy.asarray(W), jax.numpy.asarray(X), Y)


# ---------------------------------------------------------------------------
# assert_step_matches


def torch_step(frozen="masked", lr_factor=1.0, penalty=False):
    """A user's one-step function with torch.optim.SGD; ``frozen``: how the
    frozen filters are handled (``masked``: left out of the update)."""
    import torch

    def step(W, X, y, eta, weight_decay, trainable):
        Wt = torch.nn.Parameter(torch.tensor(W))
        opt = torch.optim.SGD([Wt], lr=eta * lr_factor, weight_decay=weight_decay)
        F = torch.relu(torch.einsum("jrd,ipd->jrip", Wt, torch.tensor(X))).sum(dim=(1, 3)) / 3
        loss = torch.nn.functional.softplus(-torch.tensor(y) * (F[0] - F[1])).mean()
        loss.backward()
        keep = torch.tensor(~np.asarray(trainable))
        if frozen == "grad_zeroed":  # the gradient zeroed, weight decay still acts
            Wt.grad[keep] = 0
        before = Wt.detach().clone()
        opt.step()
        if frozen == "masked":
            with torch.no_grad():
                Wt[keep] = before[keep]
        value = loss + 0.5 * weight_decay * (before**2).sum() if penalty else loss
        return Wt, value

    return step


@needs_torch
def test_step_right_torch_step_passes():
    assert_step_matches(torch_step(), W, X, Y, 0.5, 0.1, MASK)
    assert_step_matches(torch_step(), W, X, Y, 0.5, 0.0)


@needs_torch
@pytest.mark.parametrize(
    "kw, name",
    [
        (dict(frozen="grad_zeroed"), "weight decay applied to frozen filters"),
        (dict(frozen="trained"), "frozen filters trained (the trainable mask not applied)"),
        (dict(lr_factor=0.5), "a step of c x eta, c = 0.5 (estimated)"),
        (dict(penalty=True), "the penalty (lambda/2)|W|^2 included"),
    ],
)
def test_step_mistakes_are_named(kw, name):
    text = message(assert_step_matches, torch_step(**kw), W, X, Y, 0.5, 0.1, MASK)
    assert "step differs from refimpl's GD step" in text and name in text


# ---------------------------------------------------------------------------
# assert_trajectory_matches


@pytest.fixture(scope="module")
def ref_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("testing") / "ref.npz"
    save(path, run_experiment(tiny_config(weight_decay_up=0.01, steps_up=20)))
    return str(path)


def numpy_run(ref_path, lr_factor=1.0):
    """The up stage of a refimpl file trained by a user's numpy loop:
    (W at every step, loss at every step)."""
    v = load(ref_path, require_coefficients=False).stage("up")
    Wt, snaps, losses = v.W0.copy(), [], []
    for t in range(v.T + 1):
        snaps.append(Wt.copy())
        losses.append(naive.loss(Wt, v.X, v.y))
        if t < v.T:
            grad = naive.gradient(Wt, v.X, v.y, float(v.weight_decay))
            Wt = Wt - lr_factor * float(v.eta) * grad
    return np.stack(snaps), np.array(losses)


def test_trajectory_arrays_on_the_inputs_of_a_file(ref_path):
    W_run, loss = numpy_run(ref_path)
    report = assert_trajectory_matches((W_run, loss), ref_path)
    assert report.agree and report.theirs == "<your run>"
    assert assert_trajectory_matches({"W": W_run, "loss": loss}, ref_path).agree
    assert assert_trajectory_matches(ref_path).agree  # a whole file


def test_trajectory_wrong_step_size_message_has_the_verdict(ref_path):
    text = message(assert_trajectory_matches, numpy_run(ref_path, 0.5), ref_path)
    assert "RESULT: differences found in up" in text
    assert "=> up matches the reference with: lr_scale (learning rate x 0.5" in text


def test_trajectory_arrays_need_ref():
    with pytest.raises(ConfigError, match="need ref"):
        assert_trajectory_matches((np.zeros((2, 2, 1, 3)), np.zeros(2)))
    with pytest.raises(ConfigError, match="has W, loss and optionally b"):
        assert_trajectory_matches({"W": 0, "los": 0}, "x.npz")


# ---------------------------------------------------------------------------
# strategies


@settings(max_examples=8)
@given(configs())
def test_configs_run(config):
    assert isinstance(config, Config)
    exp = run_experiment(config)
    assert set(exp.stages) == {"up", "down", "scratch"}


@given(configs(d=12, m=2, m_down=2, layout="split"))
def test_configs_fixed_fields(config):
    assert (config.d, config.m, config.m2, config.layout) == (12, 2, 2, "split")


@given(st.data())
def test_tasks_roles_and_layouts(data):
    order = data.draw(st.sampled_from(("any", "refimpl")))
    dyadic = data.draw(st.booleans())
    task = data.draw(tasks(order=order, dyadic=dyadic))
    roles = task.roles()  # every draw has determinable roles
    n, P, _ = task.X.shape
    assert P in (2, 3) and task.signals.shape[0] == P - 1
    for i in range(n):
        for p in range(P):
            r = roles[i, p]
            expected = task.xi[i] if r == -1 else task.y_clean[i] * task.signals[r]
            assert np.array_equal(task.X[i, p], expected)
    if order == "refimpl":
        assert np.array_equal(roles, np.tile(np.append(np.arange(P - 1), -1), (n, 1)))


@given(st.data())
def test_dyadic_weights_and_tasks_give_exact_preactivations(data):
    task = data.draw(tasks(dyadic=True))
    W0 = data.draw(weights(2, task.X.shape[2], dyadic=True))
    pre = forward(W0, task.X, parts=True).pre
    assert np.array_equal(pre, naive.preactivations(W0, task.X))
    assert np.array_equal(pre * 16, np.round(pre * 16))  # multiples of 1/16: exact


@settings(max_examples=15)
@given(problems(max_steps=5))
def test_problems_train(p):
    stage = train_stage(
        p.W0, p.task, p.eta, p.steps, weight_decay=p.weight_decay, trainable=p.trainable
    )
    assert stage.W.shape[1:] == p.W0.shape and stage.gamma is not None


def test_the_testing_extra_lists_hypothesis():
    cfg = configparser.ConfigParser()
    cfg.read(os.path.join(ROOT, "setup.cfg"))
    assert "hypothesis" in cfg["options.extras_require"]["testing"]


def test_without_hypothesis_one_line_and_assertions_still_work():
    code = (
        "import sys; sys.modules['hypothesis'] = None\n"
        "import numpy as np\n"
        "import refimpl.testing as t\n"
        "from refimpl.network import forward\n"
        "t.assert_forward_matches(forward, np.ones((2, 1, 3)), np.ones((2, 2, 3)))\n"
        "try:\n    t.problems()\nexcept ImportError as e:\n    print(e)\n"
        "try:\n    from refimpl.testing import seeds\nexcept ImportError as e:\n    print(e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    line = "refimpl.testing's strategies need hypothesis: pip install 'refimpl[testing]'"
    assert out.stdout.splitlines() == [line, line]


# ---------------------------------------------------------------------------
# the README's worked example, run as written


def readme_example():
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    marker = "<!-- worked example: run by tests/test_testing_api.py -->"
    assert marker in text, "the README lost its worked example"
    block = re.search(r"```python\n(.*?)```", text[text.index(marker) :], re.S)
    return block.group(1)


def test_readme_example_is_about_15_lines():
    code = [line for line in readme_example().splitlines() if line.strip()]
    assert len(code) <= 20


@needs_torch
def test_readme_example_runs():
    namespace = {}
    exec(compile(readme_example(), "README.md (worked example)", "exec"), namespace)
    tests = [f for name, f in namespace.items() if name.startswith("test_")]
    assert tests
    for test in tests:
        test()
