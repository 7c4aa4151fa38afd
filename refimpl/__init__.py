"""refimpl: reference implementation of partial parameter transfer between
two-layer ReLU CNNs, with exact gradient-descent dynamics and tracked
signal-learning and noise-memorisation coefficients (see docs/model.md).

Quick start::

    from refimpl import Config, run_experiment
    exp = run_experiment(Config(seed=1))
    exp.test_error("down")["clean_error"]

The public names below are imported on first use (PEP 562), so that
``python -m refimpl`` starts its Ctrl-C handling before numpy and numba load.
"""

import importlib

__version__ = "0.1.0"

_PUBLIC = {
    "Config": "config",
    "ConfigError": "errors",
    "RefimplError": "errors",
    "Experiment": "transfer",
    "inherit": "transfer",
    "run_experiment": "transfer",
    "Stage": "train",
    "train_stage": "train",
}

__all__ = [*_PUBLIC, "__version__"]


def __getattr__(name):
    if name in _PUBLIC:
        value = getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'refimpl' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
