"""refimpl: reference implementation of partial parameter transfer between
two-layer ReLU CNNs, with exact gradient-descent dynamics and tracked
signal-learning and noise-memorisation coefficients (see docs/model.md).

Quick start::

    from refimpl import Config, run_experiment
    exp = run_experiment(Config(seed=1))
    exp.test_error("down")["clean_error"]
"""
__version__ = "0.1.0"

from .config import Config, ConfigError  # noqa: E402
from .transfer import Experiment, inherit, run_experiment  # noqa: E402
from .train import Stage, train_stage  # noqa: E402

__all__ = ["Config", "ConfigError", "Experiment", "Stage", "inherit", "run_experiment",
           "train_stage", "__version__"]
