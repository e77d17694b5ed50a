# alphatide: `make run` and `make test` do all set-up on a fresh machine.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# Locally `make test` skips the `slow` suites; CI (CI=true) runs them too: they fit its budget (~1 min).
# The `cluster` suite (the whole distributed layout, ~4 min) runs only with `make test-cluster`.
PYTEST_ARGS ?= $(if $(CI),-m "not cluster",-m "not slow and not cluster")

.PHONY: setup run chain serve test test-all test-cluster lint airflow cluster cluster-down bench constraints clean hftbacktest-env bench-sim

# Create or refresh .venv when it is missing or older than the dependency files.
$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24" setuptools wheel
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

setup: $(STAMP)

## run: the nightly chain through Airflow (SQLite), then the serving tier until Ctrl-C
run: setup
	$(BIN)/alphatide run

chain: setup
	$(BIN)/alphatide chain

serve: setup
	$(BIN)/alphatide serve

## test: everything but the `slow` suites (with CI=true, as .ci/run does, everything)
test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-all: setup
	$(BIN)/python -m pytest

## test-cluster: every `cluster`-marked test (tests/cluster: the layout end to end, ~4.5-10 min; needs PostgreSQL on 5432, Redis on 6379)
test-cluster: setup
	$(BIN)/python -m pytest -m cluster

lint: setup
	$(BIN)/ruff check pipelines serving dags tests bench feature_repo
	$(BIN)/mypy pipelines serving

## airflow: the Airflow UI (airflow standalone) on this project's dags/
airflow: setup
	$(BIN)/alphatide airflow

## cluster: Airflow (CeleryExecutor, PostgreSQL, Redis broker), MLflow server, Redis online store, 2 serving
## replicas on this machine (ALPHATIDE_CLUSTER__* to change; README "Running at scale"); cluster-down stops them
cluster: setup
	$(BIN)/alphatide cluster up

cluster-down: setup
	$(BIN)/alphatide cluster down

constraints: setup
	$(BIN)/python -m pip freeze --exclude-editable | sed 's/^torch==2.13.0+cpu$$/torch==2.13.0/' > constraints.new
	@echo "review constraints.new, then move it over constraints.txt"

## hftbacktest-env: the reference backtester in its own venv (.venv-hft): it needs numpy < 2.3 and numba 0.61
HFT_VENV := .venv-hft
$(HFT_VENV)/.installed-stamp: bench/hftbacktest-requirements.txt
	@test -x $(HFT_VENV)/bin/python || $(PYTHON) -m venv $(HFT_VENV)
	$(HFT_VENV)/bin/python -m pip install --quiet --upgrade "pip>=24"
	$(HFT_VENV)/bin/python -m pip install --quiet -r bench/hftbacktest-requirements.txt
	@touch $@

hftbacktest-env: $(HFT_VENV)/.installed-stamp

## bench-sim: the tick-level simulator side by side with hftbacktest (python -m bench.sim)
bench-sim: setup hftbacktest-env
	$(BIN)/python -m bench.sim

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
