# The two commands of the README: `make run` and `make test`. Both create
# .venv with the machine's python3 when it is missing and install the package.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: run test test-all lint venv bench validate clean docs

venv: $(PY)

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.installed-run: setup.cfg pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: setup.cfg pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[test,plot,realdata]'
	touch $@ $(VENV)/.installed-run

run: $(VENV)/.installed-run
	$(PY) -m refimpl run --out out

# `make test`: every test but the long end-to-end ones (marked slow);
# `make test-all`: all of them (CI runs both).
test: $(VENV)/.installed-test
	$(PY) -m pytest -m "not slow"

test-all: $(VENV)/.installed-test
	$(PY) -m pytest

# `make lint`: the formatter and the linter (configuration: ruff.toml).
lint: $(VENV)/.installed-test
	$(PY) -m ruff format --check .
	$(PY) -m ruff check .

# `make docs`: the documentation site (Sphinx, the gallery run) into
# docs/_build/html, offline, warnings as errors.
$(VENV)/.installed-docs: setup.cfg pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[docs]'
	touch $@

docs: $(VENV)/.installed-docs
	$(PY) -m sphinx -W --keep-going -b html docs docs/_build/html

bench: $(VENV)/.installed-run
	$(PY) validation/bench_step.py

validate: $(VENV)/.installed-test
	$(PY) -m refimpl validate --out validation/report

clean:
	rm -rf $(VENV) out build *.egg-info .pytest_cache .hypothesis
