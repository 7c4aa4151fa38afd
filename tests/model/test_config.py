"""Configuration validation: every field's bad values raise ConfigError whose
message names the field; combinations the model cannot represent are refused."""

import dataclasses
import json
import math

import numpy as np
import pytest
from strategies import tiny_config

from refimpl.config import Config, ConfigError, parse_assignment

NAN, INF = math.nan, math.inf
INT_TYPES = ["5", 5.0, 2.5, True, [3], NAN]
REAL_TYPES = ["1.0", None, True, [1.0], NAN, INF, -INF]

# field -> values that must be refused (wrong type, out of range, non-finite)
BAD = {
    "d": INT_TYPES + [None, 2, 0, -5],
    "m": INT_TYPES + [None, 0, -1],
    "m_down": INT_TYPES + [0, -2],
    "n_up": INT_TYPES + [None, 0, -1],
    "n_down": INT_TYPES + [None, 0],
    "u_norm": REAL_TYPES + [-0.1],
    "v_up_norm": REAL_TYPES + [-1.0],
    "v_down_norm": REAL_TYPES + [-1e-9],
    "v_cos": REAL_TYPES + [1.0000001, -1.5],
    "sigma_p_up": REAL_TYPES + [0.0, -1.0],
    "sigma_p_down": REAL_TYPES + [0, -0.5],
    "flip_up": REAL_TYPES + [0.5, 0.7, -0.01],
    "flip_down": REAL_TYPES + [0.5, 1.0, -1e-3],
    "layout": ["JOINT", "", "both", 1, None, True],
    "eta": REAL_TYPES + [0.0, -0.1],
    "eta_down": [x for x in REAL_TYPES if x is not None] + [0.0, -0.1, "1"],
    "sigma_0": REAL_TYPES + [0.0, -1.0],
    "weight_decay_up": REAL_TYPES + [-0.1],
    "weight_decay": REAL_TYPES + [-1e-6],
    "steps_up": INT_TYPES + [None, -1],
    "steps_down": INT_TYPES + [None, -3],
    "epsilon": REAL_TYPES + [-0.1],
    "snapshots": INT_TYPES + [None, 1, 0],
    "alpha": REAL_TYPES + [-0.1, 1.01],
    "granularity": ["Filter", "entries", 0, None],
    "freeze_inherited": [1, 0, "true", None, 1.0],
    "rescale_inherited": REAL_TYPES,
    "n_test": INT_TYPES + [None, 1, 0, 10**7 + 1],
    "estimator": ["Reduced", "mc", 2, None],
    "seed": INT_TYPES + [None, -1, 2**63],
    "engine": ["Auto", "fast", None, 1],
}

# boundary values that must be accepted
GOOD = {
    "m_down": [None, 1, 4],
    "u_norm": [0.0, 0],
    "v_up_norm": [0.0],
    "v_down_norm": [0.0],
    "v_cos": [-1.0, 1.0, 0.3],
    "flip_up": [0.0, 0.4999],
    "flip_down": [0, 0.49],
    "layout": ["joint", "split"],
    "eta": [1, 1e-9],
    "weight_decay": [0.0, 0.5],
    "steps_up": [0],
    "steps_down": [0],
    "epsilon": [0.0, 0.1],
    "snapshots": [2],
    "alpha": [0.0, 0, 1.0, 1],
    "granularity": ["filter", "entry"],
    "freeze_inherited": [True, False],
    "rescale_inherited": [-1.0, 0.0, 3],
    "n_test": [2, 10**7],
    "estimator": ["sample", "reduced"],
    "seed": [0, 2**63 - 1],
    "eta_down": [None, 0.5],
    "engine": ["auto", "weight", "gram"],
}


def test_every_field_has_bad_values():
    assert set(BAD) == {f.name for f in dataclasses.fields(Config)}


CASES = [(name, value) for name, values in BAD.items() for value in values]


@pytest.mark.parametrize("name,value", CASES, ids=[f"{n}={v!r}" for n, v in CASES])
def test_bad_value_names_the_field(name, value):
    base = tiny_config().to_dict()
    with pytest.raises(ConfigError, match=rf"\b{name}\b"):
        Config(**{**base, name: value})
    with pytest.raises(ConfigError, match=rf"\b{name}\b"):
        Config.from_dict({**base, name: value})
    with pytest.raises(ConfigError, match=rf"\b{name}\b"):
        tiny_config().replace(**{name: value})


@pytest.mark.parametrize("name,value", [(n, v) for n, vs in GOOD.items() for v in vs])
def test_boundary_values_accepted(name, value):
    config = tiny_config(**{name: value})
    assert getattr(config, name) == value


def test_config_error_is_a_value_error_with_what_is_allowed():
    with pytest.raises(ValueError, match=r"flip_down must be in \[0\.0, 0\.5\), got 0\.5"):
        tiny_config(flip_down=0.5)
    with pytest.raises(ConfigError, match="layout must be 'joint' or 'split'"):
        tiny_config(layout="both")


@pytest.mark.parametrize("task", ["up", "down"])
def test_n_plus_signals_greater_than_d_refused(task):
    """The noise vectors must be linearly independent in the d - (number of
    nonzero signal directions) dimensions left to them (docs/model.md §4)."""
    key = f"n_{task}"
    v_key = f"v_{task}_norm"
    tiny_config(d=20, **{key: 18})  # u, v nonzero: room d - 2
    with pytest.raises(ConfigError, match=rf"\b{key}\b"):
        tiny_config(d=20, **{key: 19})
    tiny_config(d=20, u_norm=0.0, **{key: 19})  # u = 0: room d - 1
    with pytest.raises(ConfigError, match=rf"\b{key}\b"):
        tiny_config(d=20, u_norm=0.0, **{key: 20})
    tiny_config(d=20, u_norm=0.0, **{key: 20, v_key: 0.0})  # no signal: room d


def test_freeze_with_entry_granularity_refused():
    with pytest.raises(ConfigError, match="freeze_inherited") as info:
        tiny_config(freeze_inherited=True, granularity="entry")
    assert "granularity" in str(info.value)
    tiny_config(freeze_inherited=True, granularity="filter")
    tiny_config(freeze_inherited=False, granularity="entry")


def test_entry_granularity_needs_equal_widths():
    with pytest.raises(ConfigError, match="m_down"):
        tiny_config(granularity="entry", m_down=4)
    tiny_config(granularity="entry", m_down=3)  # m = 3


def test_alpha_cannot_inherit_more_filters_than_upstream_has():
    with pytest.raises(ConfigError, match="alpha"):
        tiny_config(m=2, m_down=5, alpha=0.6)  # round(3.0) = 3 > 2
    tiny_config(m=2, m_down=5, alpha=0.4)  # 2 <= 2


def test_unknown_key_named():
    with pytest.raises(ConfigError, match="'alpah'"):
        Config.from_dict({"alpah": 0.5})
    with pytest.raises(TypeError):
        Config(alpah=0.5)  # the dataclass constructor itself refuses it too


def test_shorthands_and_precedence():
    base = tiny_config().to_dict()
    without = {
        k: v
        for k, v in base.items()
        if k not in ("sigma_p_up", "sigma_p_down", "flip_up", "n_up", "n_down")
    }
    # a shorthand sets both tasks; an explicit per-task key wins over it
    c = Config.from_dict({**without, "sigma_p": 2.0, "sigma_p_down": 3.0, "flip": 0.1, "n": 5})
    assert (c.sigma_p_up, c.sigma_p_down) == (2.0, 3.0)
    assert (c.flip_up, c.flip_down) == (0.1, 0.2)  # flip_down given explicitly
    assert (c.n_up, c.n_down) == (5, 5)
    c = Config.from_dict({**base, "n": 5})
    assert (c.n_up, c.n_down) == (12, 8)
    with pytest.raises(ConfigError, match="sigma_p"):
        Config.from_dict({"sigma_p": -1.0})


def test_from_dict_needs_an_object():
    with pytest.raises(ConfigError, match="JSON object"):
        Config.from_dict([1, 2])


def test_round_trip_frozen_and_replace():
    c = tiny_config(alpha=0.0, layout="split", m_down=4)
    assert Config.from_dict(c.to_dict()) == c
    assert Config.from_dict(json.loads(c.to_json())) == c
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.alpha = 0.5
    r = c.replace(alpha=0.5)
    assert r.alpha == 0.5 and c.alpha == 0.0 and r.layout == "split"
    assert c.m2 == 4 and tiny_config().m2 == 3
    assert (c.n_signals, c.n_patches) == (2, 3)


def test_json_file(tmp_path):
    good = tmp_path / "c.json"
    good.write_text(json.dumps({**tiny_config().to_dict(), "alpha": 1 / 3}))
    assert Config.from_json_file(good).alpha == 1 / 3
    with pytest.raises(ConfigError, match="cannot read config file"):
        Config.from_json_file(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"alpha": 0.5,')
    with pytest.raises(ConfigError, match="not valid JSON"):
        Config.from_json_file(bad)
    array = tmp_path / "array.json"
    array.write_text("[1, 2]")
    with pytest.raises(ConfigError, match="JSON object"):
        Config.from_json_file(array)


def test_parse_assignment():
    assert parse_assignment("alpha=0.25") == ("alpha", 0.25)
    assert parse_assignment("layout=split") == ("layout", "split")
    assert parse_assignment("freeze_inherited=true") == ("freeze_inherited", True)
    assert parse_assignment("m_down=null") == ("m_down", None)
    assert parse_assignment(" d =100") == ("d", 100)
    assert parse_assignment("rescale_inherited=a=b") == ("rescale_inherited", "a=b")
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_assignment("alpha")


def test_decay_factor_must_stay_positive():
    # 1 - eta*lambda <= 0 would flip or zero the weights each step (docs/model.md §3)
    for name in ("weight_decay", "weight_decay_up"):
        with pytest.raises(ConfigError, match=rf"\b{name}\b"):
            tiny_config(eta=2.0, **{name: 0.5})
        assert getattr(tiny_config(eta=2.0, **{name: 0.49}), name) == 0.49


def test_numpy_scalars_are_accepted_and_normalised():
    c = tiny_config(d=np.int64(40), alpha=np.float64(0.5), freeze_inherited=np.bool_(True))
    assert type(c.d) is int and type(c.alpha) is float and type(c.freeze_inherited) is bool
    assert json.loads(c.to_json())["d"] == 40
    with pytest.raises(ConfigError, match=r"\bd\b"):
        tiny_config(d=np.float64(40.0))


def test_eta_down_sets_the_step_size_of_fine_tuning_and_scratch():
    c = Config(eta=1.0, eta_down=0.25)
    assert (c.eta_of("up"), c.eta_of("down"), c.eta_of("scratch")) == (1.0, 0.25, 0.25)
    assert Config(eta=0.5).eta_of("down") == 0.5
    with pytest.raises(ConfigError, match="eta_down"):
        Config(eta_down=0.0)
    # the decay factor of fine-tuning uses fine-tuning's own step size
    Config(eta=10.0, eta_down=0.5, weight_decay=1.0)
    with pytest.raises(ConfigError, match="weight_decay=1.0 with step size 2.0"):
        Config(eta=0.5, eta_down=2.0, weight_decay=1.0)


def test_engine_and_unset_new_fields_do_not_change_derived_seeds():
    from refimpl.lab.seeds import derive_seed

    c = Config(alpha=0.3)
    assert derive_seed(c, 0) == derive_seed(c.replace(engine="gram"), 0)
    assert derive_seed(c, 0) != derive_seed(c.replace(eta_down=0.5), 0)
    assert "engine" not in c.seed_fields() and "eta_down" not in c.seed_fields()
    assert c.seed_fields()["alpha"] == 0.3
    with pytest.raises(ConfigError, match="engine"):
        Config(engine="fast")
