# Loop Studio — `make run` opens the studio, `make test` runs the tests. Both set everything up first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DATA_DIR ?= $(or $(STUDIO_DATA_DIR),studio-data)
MODEL_STAMP := $(DATA_DIR)/models/smollm2-135m-instruct/studio-bootstrap.json
# CPU machines get the CPU build of torch 2.13.0: a local wheel when the machine has one, else PyTorch's CPU index.
TORCH_SOURCE := $(shell if command -v nvidia-smi >/dev/null 2>&1; then echo ""; \
	elif ls /opt/wheels/torch-2.13.0* >/dev/null 2>&1; then echo "--find-links /opt/wheels"; \
	else echo "--extra-index-url https://download.pytorch.org/whl/cpu"; fi)

# Tests marked `databases` run on SQLite and on a throwaway PostgreSQL server (tests/pg_support.py): both by default.
TEST_DB ?= $(or $(STUDIO_TEST_DB),both)

.PHONY: run test install bootstrap browser postgres lint clean bench

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch is pinned in the same command so no other package can swap it for a CUDA build
	$(PY) -m pip install -q $(TORCH_SOURCE) "torch==2.13.0" -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

$(MODEL_STAMP): $(STAMP)
	$(VENV)/bin/studio models bootstrap

bootstrap: $(MODEL_STAMP)

# Debian's chromium for the headless-browser smoke test (Playwright drives it; no browser download).
browser:
	@command -v chromium >/dev/null 2>&1 || { (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) \
		|| echo "chromium could not be installed: the browser test will be skipped"; }

# Debian's PostgreSQL server binaries (initdb, pg_ctl) for the PostgreSQL test variants; the tests start their own
# throwaway server and skip with the reason when none can start.
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || { \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) \
		|| echo "postgresql could not be installed: the PostgreSQL test variants will be skipped"; }

run: bootstrap
	$(VENV)/bin/studio run

test: bootstrap browser postgres
	$(PY) -m pytest --db=$(TEST_DB)

bench: bootstrap
	$(PY) benchmarks/generation.py
	$(PY) benchmarks/training.py
	$(PY) benchmarks/bench_labeling.py

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) .pytest_cache
