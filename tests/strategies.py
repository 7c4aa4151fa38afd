"""The hypothesis strategies of the project's tests: they live in the package,
:mod:`refimpl.testing` (installed with it, for everyone's test suites), and
are imported from here as ``strategies`` by every test folder (conftest.py).
"""

from refimpl.testing import (  # noqa: F401 (re-exported)
    DYADIC,
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
    seeds,
    shapes,
    structured_task,
    tasks,
    tiny_config,
    train_problems,
    weights,
)
