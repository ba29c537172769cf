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

.PHONY: install workbook test test-slow test-gpu bench clean reproduce-ml1m reproduce-ml1m-variants report-ml1m

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

# The ML-1M reproduction of the paper's Table 3 (issue 4): the paper's settings to early stopping, on demand
# (about 2 hours on 2 cores). REPRO_JOBS queues run side by side, each on one thread (on 2 cores, two 1-thread
# runs finish sooner than one after the other on 2 threads: small matmuls scale poorly across threads).
# Each run resumes from its last checkpoint when restarted; finished runs are reused. Logs: outputs/full/queue<i>.log
REPRO_MODELS ?= sasrec mamba4rec hydra4rec mamba2rec
REPRO_SEEDS ?= 0
REPRO_JOBS ?= 2
reproduce-ml1m: install
	@mkdir -p outputs/full
	@jobs=(); i=0; for s in $(REPRO_SEEDS); do for m in $(REPRO_MODELS); do jobs+=("$$m:$$s"); done; done; \
	pids=(); for q in $$(seq 0 $$(($(REPRO_JOBS) - 1))); do \
	  ( for j in $$(seq $$q $(REPRO_JOBS) $$(($${#jobs[@]} - 1))); do m=$${jobs[$$j]%%:*}; s=$${jobs[$$j]##*:}; \
	      OMP_NUM_THREADS=$$((2 / $(REPRO_JOBS) > 0 ? 2 / $(REPRO_JOBS) : 1)) $(PY) -m ssmrec_lib train --model $$m --dataset ml-1m \
	        --profile full --seed $$s --out outputs/full/runs || exit 1; done ) > outputs/full/queue$$q.log 2>&1 & pids+=($$!); \
	done; echo "queues: $${pids[*]} (logs outputs/full/queue*.log)"; st=0; for p in $${pids[@]}; do wait $$p || st=1; done; exit $$st

# Configurations compared on validation for the same table (`python -m ssmrec_lib report` keeps, per model, the
# configuration with the best validation NDCG@10): training on every target (windows=all) against the last 201 items.
REPRO_VARIANTS ?= mamba4rec:windows=all sasrec:windows=all
reproduce-ml1m-variants: install
	@for v in $(REPRO_VARIANTS); do m=$${v%%:*}; o=$${v#*:}; \
	  OMP_NUM_THREADS=1 $(PY) -m ssmrec_lib train --model $$m --dataset ml-1m --profile full --seed 0 --set $$o \
	    --out outputs/full/runs || exit 1; done

report-ml1m: install
	$(PY) -m ssmrec_lib report --runs outputs/full/runs --dataset ml-1m --out outputs/full
