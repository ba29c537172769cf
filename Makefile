# Two commands do all set-up on a fresh machine (see README):
#   make workbook   install everything, then run the workbook (quick profile on ML-1M)
#   make test       install everything, then run the test suite (what CI runs)
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PROFILE ?= quick
# Where the offline datasets live (tests and CI read ../shared/data); the library also honours SSMREC_DATA_DIR.
export SSMREC_DATA_DIR ?= $(abspath ../shared/data)

.PHONY: install workbook test test-slow test-gpu bench clean

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

install: $(VENV)/.installed

workbook: install
	$(PY) -m ssmrec_lib workbook --profile $(PROFILE)

test: install
	$(PY) -m pytest -m "not slow and not gpu" -q

test-slow: install
	$(PY) -m pytest -m "slow" -q

test-gpu: install
	$(PY) -m pytest tests/gpu -q

bench: install
	$(PY) -m ssmrec_lib bench kernels

clean:
	rm -rf $(VENV) .cache build *.egg-info
