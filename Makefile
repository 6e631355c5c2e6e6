# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(abspath $(VENV))/bin
STAMP := $(VENV)/.neurodict-installed
export PATH := $(BIN):$(PATH)

.PHONY: install demo test test-slow test-slurm lint clean

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

## test: the fast test suite (includes a whole workflow run on a tiny session)
test: $(STAMP)
	$(BIN)/python -m pytest

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow

## test-slurm: the workflow on a real one-node SLURM cluster on this machine (root; docs/cluster.md)
test-slurm: $(STAMP)
	timeout -k 10 900 bash tests/slurm/run.sh

lint: $(STAMP)
	test -f data/demo/session.yaml || $(BIN)/neurodict synth --out data/demo
	$(BIN)/ruff check neurodict tests benchmarks
	$(BIN)/snakefmt --check Snakefile rules
	$(BIN)/snakemake --lint

clean:
	rm -rf results .snakemake
