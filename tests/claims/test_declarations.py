"""The registry test: every claim of ``refimpl.claims.names()`` is a
declaration of the one shape (refimpl/lab/claim.py), checked the same way
for all of them (as scikit-learn's ``parametrize_with_checks`` does for
estimators):

- a :class:`Protocol` named after the module, with a source of
  docs/model.md §8, in both sizes, whose hash covers the configs that run;
- ``measure``, a pure ``decide`` and ``present``, and nothing of the old
  hand-written shape (``run``, ``NAME``, file I/O);
- ``decide`` on the synthetic PASS and FAIL measurements of the claim's own
  test file (``tests/claims/test_<name>.py: examples(size)``) at both sizes
  (the quick size may be too small for a PASS: then FAIL only);
- ``present`` on them, and the JSON the lab writes has the one schema.
"""

from __future__ import annotations

import copy
import importlib.util
import json
from pathlib import Path

import pytest

from refimpl import claims
from refimpl.lab import claim as C

HERE = Path(__file__).resolve().parent
NAMES = claims.names()
SOURCES = {  # docs/model.md §8: where each claim comes from
    "coefficients": "framework",
    "phase_single": "framework",
    "gain_shared": "paper",
    "gain_upstream_n": "paper",
    "gain_alpha": "paper",
    "gain_noise_dim": "paper",
    "negative_transfer": "paper",
    "transfer_phase": "paper",
    "gamma_candidates": "hypothesis",
    "bayes": "paper",
    "failure_mode": "hypothesis",
    "mechanism": "hypothesis",
    "mitigation": "paper",
    "mitigation_freezing": "hypothesis",
    "robustness": "hypothesis",
    "crosscheck": "implementation",
    "realdata": "paper",
}


def examples_of(name):
    """``examples`` of tests/claims/test_<name>.py."""
    path = HERE / f"test_{name}.py"
    spec = importlib.util.spec_from_file_location(f"_examples_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert hasattr(module, "examples"), f"{path.name} defines no examples(size)"
    return module.examples


def first_config(x):
    """The first config (an object with ``replace``) inside a size's configs."""
    items = x.values() if isinstance(x, dict) else x if isinstance(x, (list, tuple)) else [x]
    for v in items:
        if hasattr(v, "replace") and hasattr(v, "to_dict"):
            return v
        if isinstance(v, (dict, list, tuple)):
            found = first_config(v)
            if found is not None:
                return found
    return None


def test_every_claim_is_known_with_its_source():
    assert set(NAMES) == set(SOURCES) and set(claims.ORDER) == set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_declares_the_protocol_in_both_sizes(name):
    m = claims.load(name)
    p = m.PROTOCOL
    assert isinstance(p, C.Protocol) and p.name == name and p.source == SOURCES[name]
    assert p.claim and p.statistic and p.pass_rule and p.fixed
    assert isinstance(p.full, C.Size) and isinstance(p.quick, C.Size)
    assert len(p.hash(False)) == 12 and p.hash(False) != p.hash(True)
    assert all(isinstance(d, C.Disclosure) and d.earlier for d in p.disclosures)
    for attr in ("measure", "decide", "present"):
        assert callable(getattr(m, attr)), attr
    for old in ("run", "NAME", "CLAIM", "SOURCE", "QUICK_PROTOCOL"):
        assert not hasattr(m, old), f"{name} still has the old {old}"
    json.dumps(p.to_dict(False), allow_nan=False)


@pytest.mark.parametrize("name", NAMES)
def test_the_hash_covers_the_configs_that_run(name):
    p = claims.load(name).PROTOCOL
    full = copy.copy(p.full)
    full.configs = copy.deepcopy(p.full.configs)
    c = first_config(full.configs)
    assert c is not None, f"{name} declares no config"
    before = C.Protocol(**{**p.__dict__, "full": full}).hash(False)
    assert before == p.hash(False)

    def swap(x):
        if x is c:
            return c.replace(seed=c.seed + 1)
        if isinstance(x, dict):
            return {k: swap(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return type(x)(swap(v) for v in x)
        return x

    full.configs = swap(full.configs)
    assert C.Protocol(**{**p.__dict__, "full": full}).hash(False) != before


@pytest.mark.parametrize("quick", [True, False], ids=["quick", "full"])
@pytest.mark.parametrize("name", NAMES)
def test_decide_and_present_on_synthetic_measurements(name, quick, tmp_path):
    m = claims.load(name)
    size = m.PROTOCOL.size(quick)
    examples = examples_of(name)(size)
    assert set(examples) == {"PASS", "FAIL"} or (quick and set(examples) == {"FAIL"})
    for verdict, measurements in examples.items():
        decision = m.decide(size, measurements)
        assert decision["verdict"] == verdict and int(decision.get("missing", 0) or 0) == 0
        outcome = m.present(size, measurements, decision)
        assert isinstance(outcome, C.Outcome) and outcome.statistic
        doc, markdown = C.claim_result(m.PROTOCOL, quick, decision, outcome, tmp_path)
        assert tuple(doc) == C.SCHEMA_KEYS
        assert doc["verdict"] == verdict and f"**Verdict: {verdict}**" in markdown
        json.dumps(doc, allow_nan=False)
