# oci-tools developer entry points.  Everything runs from the checkout's .venv.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install test check lint typecheck demo bench fuzz clean

# The editable install puts the checkout on sys.path with a plain path in a
# .pth file (editable_mode=compat): the default mode's import-hook finder costs
# ~10 ms at every interpreter start, a third of a view command's budget.
# (The Makefile is a prerequisite so that changing this rule reinstalls.)
$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]' --config-settings editable_mode=compat
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
