"""Testing your own implementation against refimpl, in pytest and hypothesis
(README, "Testing your own implementation").

* **Assertions** that raise ``AssertionError`` with refimpl's diagnosis:
  :func:`assert_forward_matches`, :func:`assert_gradient_matches`,
  :func:`assert_step_matches` (your function against refimpl's on the same
  arrays; the message says what differs and which usual departure, if any,
  your result equals) and :func:`assert_trajectory_matches` (a whole run
  through :func:`refimpl.crosscheck.crosscheck`; the report, explain mode's
  verdict included, is the message). PyTorch tensors and JAX arrays are
  accepted wherever numpy arrays are (neither is imported here).
* **Hypothesis strategies** that build valid inputs directly (no filtering):
  :func:`configs`, :func:`tasks` (both layouts, any patch order, dyadic
  entries with exact-zero pre-activations), :func:`weights`,
  :func:`problems` (whole training problems), and the lower-level ones the
  project's own tests use. They need hypothesis, the ``testing`` extra
  (``pip install 'refimpl[testing]'``); without it a strategy raises
  ImportError saying so, and the assertions work.

Array conventions follow docs/model.md §1: W (2, m, d) with axis 0 index 0
for j = +1, X (n, P, d), y (n,) of +-1.

Two kinds of numbers are used by the strategies:

* ``dyadic`` entries (small multiples of 1/4): every dot product of such
  vectors is exact in floating point whatever the summation order, so the
  compiled kernel (BLAS) and any other implementation see the very same
  pre-activations, exact zeros included (the ReLU'(0) = 0 convention matters
  there);
* ``gaussian`` entries generated from a drawn seed: generic inputs on which a
  pre-activation is exactly 0 with probability 0.
"""

from .assertions import (
    DEFAULT_RTOL,
    FLOAT32_RTOL,
    assert_forward_matches,
    assert_gradient_matches,
    assert_step_matches,
    assert_trajectory_matches,
)
from .strategies import (
    DYADIC,
    NO_HYPOTHESIS,
    MarginProblem,
    PermutedProblem,
    TrainProblem,
    configs,
    dyadic_arrays,
    dyadic_problems,
    dyadic_train_problems,
    gaussian_problems,
    inherit_problems,
    labels,
    margin_problems,
    permute_patches,
    permuted_problems,
    problems,
    shapes,
    structured_task,
    tasks,
    tiny_config,
    train_problems,
    weights,
)

try:
    from .strategies import seeds
except ImportError:  # no hypothesis: seeds, a strategy object, is not defined (__getattr__)
    pass

__all__ = [
    "DEFAULT_RTOL",
    "FLOAT32_RTOL",
    "assert_forward_matches",
    "assert_gradient_matches",
    "assert_step_matches",
    "assert_trajectory_matches",
    "configs",
    "tasks",
    "weights",
    "problems",
    "TrainProblem",
    "PermutedProblem",
    "MarginProblem",
    "DYADIC",
    "seeds",
    "shapes",
    "dyadic_arrays",
    "labels",
    "dyadic_problems",
    "gaussian_problems",
    "margin_problems",
    "structured_task",
    "train_problems",
    "inherit_problems",
    "tiny_config",
    "dyadic_train_problems",
    "permute_patches",
    "permuted_problems",
]


def __getattr__(name):
    if name == "seeds":  # a strategy object, defined only with hypothesis
        raise ImportError(NO_HYPOTHESIS)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
