"""Hostile arguments to the Python API and the config fields: every public
entry point (Config, run_experiment, train_stage, inherit, Experiment.test_error,
estimate_test_error, crosscheck) checks its arguments before any work, and a bad one is a
RefimplError whose message names the parameter or the config field;
nothing is truncated, dropped or defaulted silently."""

import math
from dataclasses import fields

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import tiny_config

from refimpl import Config, inherit, run_experiment, train_stage
from refimpl import crosscheck as cc
from refimpl.cli import main
from refimpl.data import sample_task, signal_vectors
from refimpl.errors import ConfigError, ResourceError
from refimpl.evaluation import estimate_test_error
from refimpl.lab.image_experiment import ImageConfig
from refimpl.trajectory import save

INT_MAX = 2**63 - 1
INT_FIELDS = [f.name for f in fields(Config) if f.metadata["kind"] == "int"]
REAL_FIELDS = [f.name for f in fields(Config) if f.metadata["kind"] == "real"]


def huge_integers(min_digits):
    """Integers of min_digits to 6000 digits (beyond Python's 4300-digit
    printing limit too), either sign."""
    return st.builds(
        lambda k, sign, extra: sign * (10**k + extra),
        st.integers(min_digits - 1, 6000),
        st.sampled_from([1, -1]),
        st.integers(0, 10**6),
    )


def refused(match, call, *args, **kwargs):
    """The call raises a ConfigError whose one-line message contains ``match``."""
    with pytest.raises(ConfigError) as info:
        call(*args, **kwargs)
    message = str(info.value)
    assert match in message and "\n" not in message, message
    return message


# ---------------------------------------------------------------------------
# Config fields: numbers beyond int64 or beyond float are refused naming the field


@given(name=st.sampled_from(INT_FIELDS), value=huge_integers(20))
def test_an_integer_field_beyond_int64_is_refused_naming_the_field(name, value):
    message = refused(name, Config, **{name: value})
    assert message.startswith(name)
    assert ("digits" if abs(value) >= 10**30 else str(value)) in message


@given(name=st.sampled_from([n for n in INT_FIELDS if n != "n_test"]))
def test_the_int64_bound_itself(name):
    # the first integer above int64, named; the message states the bound
    # (n_test has a bound of its own)
    message = refused(name, Config, **{name: INT_MAX + 1})
    assert str(INT_MAX) in message


@given(name=st.sampled_from(REAL_FIELDS), value=huge_integers(310))
def test_a_real_field_given_an_integer_beyond_float_is_refused_naming_the_field(name, value):
    message = refused(name, Config, **{name: value})
    assert message.startswith(name)


@pytest.mark.parametrize("field", ["d", "steps_up", "steps_down", "u_norm", "snapshots", "m"])
def test_cli_set_of_a_400_digit_number_names_the_field(field, tmp_path, capsys):
    capsys.readouterr()
    code = main(["run", "--quiet", "--out", str(tmp_path / "o"), "--set", f"{field}=1{'0' * 400}"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith(f"refimpl: error: {field} must") and "\n" not in err, err
    assert not (tmp_path / "o").exists()


def test_from_dict_with_keys_of_several_types_names_a_key():
    refused("unknown config key", Config.from_dict, {1: 2, "bogus": 3})


def test_a_choice_field_given_an_array_names_the_field():
    refused("layout", Config, layout=np.array(["joint", "split"]))


# ---------------------------------------------------------------------------
# run_experiment wants a Config (or a dict of its fields)


def test_run_experiment_accepts_a_dict_of_fields():
    values = tiny_config(steps_up=2, steps_down=2, snapshots=2, n_test=100).to_dict()
    exp = run_experiment(values)
    assert exp.config == Config(**values)
    assert exp.stages["up"].T == 2


@pytest.mark.parametrize("bad", [None, "d=120", 120, [("d", 120)], ImageConfig()])
def test_run_experiment_refuses_what_is_not_a_config_naming_it(bad):
    refused("config", run_experiment, bad)


def test_run_experiment_dict_with_a_bad_key_names_the_key():
    refused("'bogus'", run_experiment, {"d": 120, "bogus": 1})


def test_run_experiment_refuses_a_progress_that_is_not_callable():
    refused("progress", run_experiment, tiny_config(), progress=1)


# ---------------------------------------------------------------------------
# train_stage: steps, snapshots and the other arguments


def task_and_weights(d=20, n=5, m=3):
    u, v, _ = signal_vectors(d, 1.0, 1.0, 1.0)
    task = sample_task(np.random.default_rng(0), n, u, v, 1.0, 0.0, "joint")
    return task, 0.01 * np.random.default_rng(1).standard_normal((2, m, d))


TASK, W0 = task_and_weights()

non_integral = st.builds(
    lambda k, frac: k + frac, st.integers(-20, 20), st.floats(0.001, 0.999)
) | st.sampled_from([math.nan, math.inf, -math.inf])


@given(steps=st.integers(max_value=-1))
def test_negative_steps_are_refused_naming_steps(steps):
    refused("steps", train_stage, W0, TASK, 0.1, steps)


@given(steps=non_integral)
def test_non_integral_steps_are_refused_not_truncated(steps):
    refused("steps", train_stage, W0, TASK, 0.1, steps)


@pytest.mark.parametrize("steps", ["5", b"5", True, None, [5], 5 + 0j])
def test_steps_of_another_type_are_refused(steps):
    refused("steps", train_stage, W0, TASK, 0.1, steps)


@given(steps=st.integers(0, 8))
def test_integral_float_steps_run_that_many_steps(steps):
    stage = train_stage(W0, TASK, 0.1, float(steps), snapshots=2)
    assert stage.T == steps and stage.loss.shape == (steps + 1,)


@given(steps=st.integers(1, 12), count=st.sampled_from([0, 1]))
def test_fewer_than_two_snapshots_are_refused_when_there_are_steps(steps, count):
    # both step 0 and the last step are always kept (docs/model.md, train_stage)
    refused("snapshots", train_stage, W0, TASK, 0.1, steps, snapshots=count)


@given(steps=st.integers(1, 12), count=st.integers(2, 30))
def test_every_snapshot_count_trains_every_step(steps, count):
    stage = train_stage(W0, TASK, 0.1, steps, snapshots=count)
    assert stage.T == steps and stage.steps[0] == 0
    assert len(stage.steps) == min(count, steps + 1)


def test_one_snapshot_of_a_zero_step_stage_is_step_zero():
    assert list(train_stage(W0, TASK, 0.1, 0, snapshots=1).steps) == [0]


@given(count=non_integral)
def test_non_integral_snapshot_counts_are_refused(count):
    refused("snapshots", train_stage, W0, TASK, 0.1, 5, snapshots=count)


@pytest.mark.parametrize(
    "snapshots", [[2.5], [9], [-1], [[1], [1, 2]], [True, False], ["2"], "3", True, {1, 2}]
)
def test_bad_snapshot_steps_are_refused_not_dropped(snapshots):
    refused("snapshots", train_stage, W0, TASK, 0.1, 5, snapshots=snapshots)


def test_given_snapshot_steps_are_kept_with_zero_and_the_last():
    stage = train_stage(W0, TASK, 0.1, 5, snapshots=np.array([3.0, 1.0]))
    assert list(stage.steps) == [0, 1, 3, 5]


BAD_REALS = ["0.1", True, None, math.nan, math.inf, [0.1], 10**400]


@pytest.mark.parametrize("bad", BAD_REALS)
@pytest.mark.parametrize("name", ["eta", "weight_decay", "epsilon"])
def test_real_arguments_are_checked_naming_them(name, bad):
    args = {"eta": 0.1, "weight_decay": 0.0, "epsilon": 0.0, name: bad}
    eta = args.pop("eta")
    refused(name, train_stage, W0, TASK, eta, 3, **args)


def test_negative_epsilon_is_refused():
    refused("epsilon", train_stage, W0, TASK, 0.1, 3, epsilon=-1.0)


@pytest.mark.parametrize(
    "name, bad",
    [
        ("track", "no"),
        ("progress", 1),
        ("trainable", np.full((2, 3), 0.5)),
        ("trainable", [["a", "b", "c"], ["a", "b", "c"]]),
        ("engine", np.array(["weight", "gram"])),
        ("gram_budget", "1G"),
        ("gram_budget", 0),
    ],
)
def test_other_arguments_are_checked_naming_them(name, bad):
    refused(name, train_stage, W0, TASK, 0.1, 3, **{name: bad})


def test_a_task_that_is_not_a_task_is_named():
    refused("task", train_stage, W0, None, 0.1, 3)


def test_steps_over_the_memory_budget_name_steps(monkeypatch):
    monkeypatch.setenv("REFIMPL_MEMORY_BUDGET", "1G")
    with pytest.raises(ResourceError, match="steps=1000000000000"):
        train_stage(W0, TASK, 0.1, 10**12)


# ---------------------------------------------------------------------------
# inherit, Experiment.test_error and estimate_test_error


W_UP = np.ones((2, 4, 20))
W_FRESH = np.zeros((2, 4, 20))


@pytest.mark.parametrize(
    "name, bad",
    [
        ("granularity", "bogus"),
        ("granularity", None),
        ("alpha", 1.5),
        ("alpha", math.nan),
        ("alpha", "0.5"),
        ("rescale", math.nan),
        ("rng", 0),
    ],
)
def test_inherit_checks_its_arguments(name, bad):
    args = {"alpha": 0.5, "rng": np.random.default_rng(0), "granularity": "filter"}
    args["rescale"] = 1.0
    args[name] = bad
    refused(name, inherit, W_UP, W_FRESH, **args)


def test_inherit_refuses_weights_of_different_d():
    refused("same d", inherit, W_UP, np.zeros((2, 4, 21)), 0.5, np.random.default_rng(0))


@pytest.fixture(scope="module")
def exp():
    return run_experiment(tiny_config(steps_up=3, steps_down=3, snapshots=2, n_test=100))


@pytest.mark.parametrize("n_test", [0, 1, 2.5, "100", True])
def test_test_error_n_test_is_never_replaced_by_the_default(exp, n_test):
    refused("n_test", exp.test_error, "down", n_test=n_test)


def test_test_error_of_an_unknown_stage_is_named(exp):
    refused("stage", exp.test_error, "bogus")


U, V, _ = signal_vectors(20, 1.0, 1.0, 1.0)
GOOD = dict(W=W_UP, u=U, v=V, sigma_p=1.0, flip=0.1, layout="joint", n_test=100)


@given(n_test=non_integral | st.sampled_from(["100", True, None]))
def test_estimate_test_error_refuses_non_integral_n_test(n_test):
    args = dict(GOOD, n_test=n_test, rng=np.random.default_rng(0))
    refused("n_test", estimate_test_error, **args)


@pytest.mark.parametrize(
    "name, bad",
    [
        ("sigma_p", 0.0),
        ("sigma_p", "1"),
        ("flip", 0.5),
        ("flip", -0.1),
        ("layout", "diagonal"),
        ("estimator", None),
        ("rng", 0),
        ("u", np.ones(3)),
        ("v", [[1.0], [1.0, 2.0]]),
    ],
)
def test_estimate_test_error_checks_its_arguments(name, bad):
    args = {**GOOD, "rng": np.random.default_rng(0), name: bad}
    refused(name, estimate_test_error, **args)


# ---------------------------------------------------------------------------
# crosscheck: tolerances, explain steps, convention and stages, checked
# before the file is read (the path does not exist: only the argument can be
# the error)

MISSING = "/nonexistent/refimpl/trajectory.npz"
bad_tolerances = (
    st.text(max_size=6)
    | st.sampled_from([True, math.nan, math.inf, [1e-8], 10**400])
    | st.floats(max_value=-1e-300, allow_infinity=True)
)


@given(bad=bad_tolerances)
def test_crosscheck_rtol_is_named(bad):
    refused("rtol", cc.crosscheck, MISSING, rtol=bad)


@given(bad=bad_tolerances)
def test_crosscheck_atol_is_named(bad):
    refused("atol", cc.crosscheck, MISSING, atol=bad)


@given(bad=non_integral | st.integers(max_value=0) | st.sampled_from(["3", True]))
def test_crosscheck_explain_steps_are_named(bad):
    refused("explain_steps", cc.crosscheck, MISSING, explain_steps=bad)


@pytest.mark.parametrize("bad", [123, b"bias", [1], {"bias": 1}, 1.5])
def test_crosscheck_convention_of_a_wrong_type_is_named(bad):
    refused("convention", cc.crosscheck, MISSING, convention=bad)


@pytest.mark.parametrize("bad", [5, [], ["bogus"], [1], "u", "up,bogus", b"up", {"up": 1}])
def test_crosscheck_stages_are_named(bad):
    refused("stages", cc.crosscheck, MISSING, stages=bad)


def test_crosscheck_explain_must_be_a_bool():
    refused("explain", cc.crosscheck, MISSING, explain="no")


@pytest.fixture(scope="module")
def run_file(exp, tmp_path_factory):
    path = tmp_path_factory.mktemp("api") / "run.npz"
    save(path, exp)
    return str(path)


@pytest.mark.parametrize("stages, expected", [("up", {"up"}), ("up,down", {"up", "down"})])
def test_crosscheck_reads_a_string_as_stage_names_not_letters(run_file, stages, expected):
    report = cc.crosscheck(run_file, stages=stages, explain=False)
    assert {r.stage for r in report.rows} == expected
    assert report.agree


def test_crosscheck_integral_explain_steps_are_accepted(run_file):
    assert cc.crosscheck(run_file, stages=["up"], explain_steps=2.0).agree


@pytest.mark.parametrize(
    "argv, option", [(["--rtol", "nan"], "--rtol"), (["--explain-steps", "0"], "--explain-steps")]
)
def test_cli_crosscheck_names_the_option(run_file, argv, option, capsys):
    capsys.readouterr()
    code = main(["crosscheck", run_file, *argv])
    err = capsys.readouterr().err.strip()
    assert code == 2 and option in err and "\n" not in err, err
