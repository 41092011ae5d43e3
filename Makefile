# oci-tools developer entry points.  Everything runs from the checkout's .venv.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install test check lint typecheck demo bench fuzz clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/pytest -q $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check oci_tools tests bench
	$(BIN)/ruff format --check oci_tools tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

check: lint typecheck test

demo: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" bash testdata/demo.sh

bench: $(STAMP)
	$(BIN)/python bench/run.py

# Every fuzzer in tests/fuzz/ for FUZZ_SECONDS (default 60) each; one line per
# fuzzer, non-zero exit on any crash (inputs saved in fuzz-artifacts/).
FUZZ_SECONDS ?= 60
fuzz: $(STAMP)
	FUZZ_SECONDS=$(FUZZ_SECONDS) $(BIN)/python tests/fuzz/run.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info fuzz-artifacts
