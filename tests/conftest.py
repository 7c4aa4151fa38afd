import os
import sys

import numpy as np
import pytest
from hypothesis import settings

# the shared strategies (tests/strategies.py) import as `strategies` from every test folder
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# the first call of a kernel compiles it: no deadlines
settings.register_profile("refimpl", deadline=None, max_examples=40, derandomize=True)
# HYPOTHESIS_PROFILE=thorough: many fresh random examples, for a hunt before a release
settings.register_profile("thorough", deadline=None, max_examples=1000, derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "refimpl"))


@pytest.fixture(scope="session", autouse=True)
def warm_kernels():
    """Compile (or load from cache) the kernels once, before timing-free tests."""
    from refimpl.network import forward, loss_and_gradient

    W = np.ones((2, 1, 3))
    X = np.ones((1, 2, 3))
    forward(W, X)
    loss_and_gradient(W, X, np.ones(1))
