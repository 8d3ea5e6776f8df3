# The two commands a new user needs: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
UV_VERSION := 0.13.9
# The runner drives Debian's Chromium build; Playwright never downloads a browser here.
CHROMIUM := /usr/lib/chromium/chromium-headless-shell

.PHONY: run up test lint typecheck check bench clean

# The virtual environment is rebuilt whenever the lock file or the project metadata changes.
$(VENV)/.installed: requirements.lock pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet "uv==$(UV_VERSION)"
	@$(VENV)/bin/uv pip install --quiet --python $(PY) -r requirements.lock
	@$(VENV)/bin/uv pip install --quiet --python $(PY) --no-deps -e .
	@touch $@

venv: $(VENV)/.installed

$(CHROMIUM):
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium-headless-shell

# The whole platform on this machine, then the demo: one permit, registration to PDFs on disk.
run: $(VENV)/.installed $(CHROMIUM)
	$(PY) -m permisos_sandbox.platform

# The same, then everything stays up (API docs, portal, kubectl) until Ctrl-C.
up: $(VENV)/.installed $(CHROMIUM)
	$(PY) -m permisos_sandbox.platform --up

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(VENV)/.installed
	$(VENV)/bin/mypy permisos operator/permisos_operator sandbox/permisos_sandbox browser-runner/permisos_runner api/permisos_api

# The whole suite: style and types are tests too.
test: $(VENV)/.installed $(CHROMIUM) lint typecheck
	$(VENV)/bin/pytest

bench: $(VENV)/.installed
	$(PY) bench/operator_throughput.py
	$(PY) bench/runner_throughput.py
	$(PY) bench/api_throughput.py

# Regenerates crds/*.yaml from the Python models in permisos/.
crds: $(VENV)/.installed
	$(PY) -m permisos.crdgen

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
