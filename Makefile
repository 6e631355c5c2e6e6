# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(abspath $(VENV))/bin
STAMP := $(VENV)/.neurodict-installed
export PATH := $(BIN):$(PATH)

.PHONY: install demo test test-slow test-slurm lint lint-workflow clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	# real Open Ephys and SpikeGLX samples for the ingestion tests (its own deps are not needed)
	$(BIN)/python -m pip install --quiet --no-deps spikewrap==0.4.0
	touch $@

install: $(STAMP)

## demo: set up, generate the synthetic multi-region session, run the workflow, write the report
demo: $(STAMP)
	test -f data/demo/session.yaml || $(BIN)/neurodict synth --out data/demo
	$(BIN)/snakemake --profile profiles/default
	@echo "Report: results/demo/report.html"

## test: the fast test suite (includes a whole workflow run on a tiny session), on
## TEST_WORKERS processes (pytest-xdist; a module's tests in one of them, its fixtures once)
TEST_WORKERS ?= 2
test: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadscope

## test-slow: the long tests (a minute or more each on 2 cores)
test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow

## test-slurm: the workflow on a real one-node SLURM cluster on this machine (root; docs/cluster.md)
test-slurm: $(STAMP)
	timeout -k 10 2400 bash tests/slurm/run.sh

## lint: style, formatting and the import contracts (pyproject.toml); no data needed; CI runs it
lint: $(STAMP)
	$(BIN)/ruff check neurodict tests benchmarks
	$(BIN)/ruff format --check neurodict tests benchmarks
	$(BIN)/lint-imports --no-logo
	$(BIN)/snakefmt --check Snakefile rules

## lint-workflow: Snakemake's own lint on the demo configuration (the tests lint a tiny session)
lint-workflow: $(STAMP)
	test -f data/demo/session.yaml || $(BIN)/neurodict synth --out data/demo
	$(BIN)/snakemake --lint

clean:
	rm -rf results .snakemake
