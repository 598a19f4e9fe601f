# Two commands do everything on a fresh clone: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
ARGS ?=
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: run test install check-java check-python lint bench clean notebooks

check-python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' || { \
	  echo "Python 3.11 is needed (found: $$($(PYTHON) --version 2>&1)). Install it, or run: make PYTHON=/path/to/python3.11 ..."; exit 1; }

check-java:
	@command -v java >/dev/null 2>&1 || [ -x "$$JAVA_HOME/bin/java" ] || { \
	  echo "Java 17 is needed by Spark and was not found."; \
	  echo "  Debian/Ubuntu: sudo apt-get install -y openjdk-17-jre-headless"; \
	  echo "  macOS:         brew install openjdk@17"; \
	  echo "  conda:         conda install -c conda-forge openjdk=17"; \
	  exit 1; }

$(INSTALLED): pyproject.toml | check-python
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(INSTALLED)

install: $(INSTALLED)

run: check-java install
	$(BIN)/churn-pipeline run --params parameters/local.yaml $(ARGS)

test: check-java install
	$(BIN)/python -m pytest tests notebooks --nbval --nbval-sanitize-with tests/nbval-sanitize.cfg \
	  --nbval-cell-timeout 600 $(ARGS)

lint: install
	$(BIN)/cfn-lint cloudformation/*.yml

clean:
	rm -rf $(VENV) .churn-pipeline artifacts .pytest_cache

# Re-execute the committed notebooks (fresh home, default parameters): the outputs nbval checks.
notebooks: check-java install
	$(BIN)/python -c 'from churn_pipeline.runner import refresh_committed_notebooks as r; r()'

# Benchmarks print a table and write JSON figures under benchmarks/out/.
bench: check-java install
	$(BIN)/python benchmarks/run_all.py
