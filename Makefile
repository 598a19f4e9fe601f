# Two commands do everything on a fresh clone: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3.12 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
LOCK := requirements.lock
# The SageMaker XGBoost container's Python and pins, for the tests of the scripts that run inside it
CONTAINER_LOCK := requirements-container.lock
CONTAINER_VENV := .venv-container
# Python 3.12 (SageMaker Studio's images), for `make test-312`
PYTHON_312 ?= $(shell for p in $$(ls -d $$(pyenv root 2>/dev/null)/versions/3.12*/bin/python3.12 $$HOME/.pyenv/versions/3.12*/bin/python3.12 2>/dev/null) \
  $$(command -v python3.12); do $$p -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' 2>/dev/null \
  && { echo $$p; break; }; done)
CONTAINER_PYTHON ?= $(shell for p in $$(ls -d $$(pyenv root 2>/dev/null)/versions/3.10*/bin/python3.10 $$HOME/.pyenv/versions/3.10*/bin/python3.10 2>/dev/null) \
  $$(command -v python3.10); do $$p -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))' 2>/dev/null \
  && { echo $$p; break; }; done)
UV_VERSION := 0.13.8
ARGS ?=
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: browser run test test-fast test-312 nbval install lock lock-container container-env check-java check-python lint bench clean notebooks

check-python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] in ((3, 11), (3, 12)) else 1)' || { \
	  echo "Python 3.11 or 3.12 is needed (found: $$($(PYTHON) --version 2>&1)). Install one, or run: make PYTHON=/path/to/python3.12 ..."; exit 1; }

check-java:
	@command -v java >/dev/null 2>&1 || [ -x "$$JAVA_HOME/bin/java" ] || { \
	  echo "Java 17 is needed by Spark and was not found."; \
	  echo "  Debian/Ubuntu: sudo apt-get install -y openjdk-17-jre-headless"; \
	  echo "  macOS:         brew install openjdk@17"; \
	  echo "  conda:         conda install -c conda-forge openjdk=17"; \
	  exit 1; }

# Installs exactly what requirements.lock pins (hash-checked), then the project itself without
# resolving anything, so two builds of one commit run the same packages.
$(INSTALLED): pyproject.toml $(LOCK) | check-python
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes --no-deps -r $(LOCK)
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $(INSTALLED)

install: $(INSTALLED)

# Re-resolve requirements.lock from pyproject.toml (pins already in the lock are kept while they
# still satisfy it; `make lock ARGS=--upgrade` moves everything to the newest allowed release).
lock: | check-python
	[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet uv==$(UV_VERSION)
	$(BIN)/uv pip compile pyproject.toml --extra test --universal --python-version 3.11.5 \
	  --generate-hashes --quiet -o $(LOCK) $(ARGS)

# The container's interpreter (Python 3.10) with requirements-container.lock: tests/test_container_python.py
# runs the endpoint and scoring scripts in it. CI requires it; elsewhere those tests say they were skipped.
$(CONTAINER_VENV)/.installed: $(CONTAINER_LOCK)
	@[ -n "$(CONTAINER_PYTHON)" ] || { echo "Python 3.10 (the SageMaker XGBoost container's) was not found: install it (pyenv install 3.10) or run make CONTAINER_PYTHON=/path/to/python3.10 ..."; exit 1; }
	$(CONTAINER_PYTHON) -m venv $(CONTAINER_VENV)
	$(CONTAINER_VENV)/bin/pip install --quiet --require-hashes --no-deps -r $(CONTAINER_LOCK)
	touch $@

container-env: $(CONTAINER_VENV)/.installed

lock-container: | check-python
	[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet uv==$(UV_VERSION)
	$(BIN)/uv pip compile requirements-container.in --python-version 3.10 --python-platform x86_64-manylinux_2_28 \
	  --generate-hashes --quiet -o $(CONTAINER_LOCK)

run: check-java install
	$(BIN)/churn-pipeline run --params parameters/local.yaml $(ARGS)

# Everything, including the nbval check of the committed notebooks with every core kept busy
# (tests/test_nbval.py); test files are shared out over the cores (a file's tests stay together,
# in order, sharing their fixtures).
test: check-java install
	@$(MAKE) --no-print-directory container-env || echo "no .venv-container (see above): tests/test_container_python.py will be skipped"
	@$(MAKE) --no-print-directory browser || echo "no Chromium (see above): the audit pages will not be opened in a browser"
	$(BIN)/python -m pytest tests -p no:nbval -n auto --dist loadfile $(ARGS)

# Chromium and chromedriver from the distribution's packages: tests open the audit pages in them
# (tests/browser.py). Installed where apt-get may run (as root, as in CI); elsewhere it says how.
browser:
	@if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then :; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; \
	else echo "Chromium and chromedriver are needed to open the audit pages:"; \
	  echo "  Debian/Ubuntu: sudo apt-get install -y chromium chromium-driver"; exit 1; fi

# The edit-test loop: no Spark, no notebooks, no whole pipeline runs.
test-fast: install
	$(BIN)/python -m pytest tests -p no:nbval -m "not spark and not pipeline" $(ARGS)

# The edit-test loop under Python 3.12 too, in a virtualenv of its own (.venv312) from the same lock.
test-312:
	@[ -n "$(PYTHON_312)" ] || { echo "Python 3.12 was not found: install it, or run make PYTHON_312=/path/to/python3.12 test-312"; exit 1; }
	$(MAKE) --no-print-directory test-fast VENV=.venv312 PYTHON=$(PYTHON_312) ARGS="-n auto $(ARGS)"

# Only the regression check of the committed notebooks, on an idle machine.
nbval: check-java install
	$(BIN)/python -m pytest notebooks --nbval --nbval-sanitize-with tests/nbval-sanitize.cfg \
	  --nbval-cell-timeout 600 $(ARGS)

# Style and formatting (ruff), the layers of ARCHITECTURE.md (import-linter, pyproject.toml), and the
# CloudFormation templates (cfn-lint).
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/cfn-lint cloudformation/*.yml

clean:
	rm -rf $(VENV) .venv312 $(CONTAINER_VENV) .churn-pipeline artifacts .pytest_cache

# Re-execute the committed notebooks (fresh home, default parameters): the outputs nbval checks.
notebooks: check-java install
	$(BIN)/python -c 'from churn_pipeline.notebooks import refresh_committed_notebooks as r; r()'

# Benchmarks print a table and write JSON figures under benchmarks/out/.
bench: check-java install
	$(BIN)/python benchmarks/run_all.py
