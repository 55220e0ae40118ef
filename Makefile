# Two commands do everything on a fresh machine: `make search` and `make test`.
# Setup is idempotent: the venv is rebuilt only when pyproject.toml changes.
PYTHON ?= python3
TORCH := torch==2.13.0
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
FASHION_MNIST := /usr/share/datasets/fashion-mnist
TARGET_MS ?= 50
PYTEST_ARGS ?=

.PHONY: setup data search test test-fast test-slow wheel-check clean

setup: $(STAMP)

# $(TORCH) first: its CPU wheel lies on disk; the project's range then installs nothing more.
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check $(TORCH)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev,tflite]'
	@touch $(STAMP)

# Fashion-MNIST from Debian where we can; otherwise say how to point at a data set.
data:
	@if [ -d $(FASHION_MNIST) ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing Fashion-MNIST (Debian package dataset-fashion-mnist)"; \
	  apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 || \
	  { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1; } || \
	  echo "warning: could not install dataset-fashion-mnist; give a data set with --data PATH"; \
	else \
	  echo "note: Fashion-MNIST not found at $(FASHION_MNIST): run 'sudo apt-get install dataset-fashion-mnist' or give --data PATH"; \
	fi

# The whole pipeline at the default budget (under 15 minutes on a 2-core CPU).
search: $(STAMP) data
	$(PY) -m nas.search --target-ms $(TARGET_MS)

# Two pytest workers (pytest-xdist): the suite's heavy tests are single processes that leave a core
# idle; then, alone, the few tests marked `serial` (they measure which CPUs are idle, or run a multi-node Ray cluster).
TEST_WORKERS ?= 2
test: $(STAMP) data
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist worksteal -m "not slow and not serial" $(PYTEST_ARGS)
	$(PY) -m pytest -q -m "serial and not slow" $(PYTEST_ARGS) || [ $$? -eq 5 ]  # 5: none selected

# The quick loop while editing: the in-process unit tests only (no subprocesses, Ray or signals).
test-fast: $(STAMP) data
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist worksteal -m "unit and not slow and not serial" $(PYTEST_ARGS)

test-slow: $(STAMP) data
	$(PY) -m pytest -q -m slow $(PYTEST_ARGS)

# The wheel in a fresh venv, used from outside the checkout (CI runs it after `make test`).
wheel-check: data
	PYTHON=$(PYTHON) TORCH=$(TORCH) .ci/wheel_check.sh

clean:
	rm -rf $(VENV) .pytest_cache build dist *.egg-info
