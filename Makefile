# The two commands a new user needs: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
UV_VERSION := 0.13.9
# The runner drives Debian's Chromium build; Playwright never downloads a browser here.
CHROMIUM := /usr/lib/chromium/chromium-headless-shell
PROMTOOL := /usr/bin/promtool
KUBECTL := /usr/bin/kubectl

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

# The tests check the alert rules with promtool and scrape the running parts with a real Prometheus,
# and drive the Kubernetes API emulator with kubectl.
$(PROMTOOL):
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus

# kubectl is not in Debian's archive: this machine carries it; elsewhere, install it by hand.
$(KUBECTL):
	@echo "kubectl is missing: the kubectl tests need it at $(KUBECTL) (not in Debian's archive)" >&2
	@exit 1

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
	$(VENV)/bin/mypy permisos operator/permisos_operator sandbox/permisos_sandbox browser-runner/permisos_runner api/permisos_api tools

# The whole suite: style and types are tests too.
test: $(VENV)/.installed $(CHROMIUM) $(PROMTOOL) $(KUBECTL) lint typecheck
	$(VENV)/bin/pytest

bench: $(VENV)/.installed
	$(PY) bench/operator_throughput.py
	$(PY) bench/runner_throughput.py
	$(PY) bench/api_throughput.py
	$(PY) bench/platform_throughput.py

# Regenerates crds/*.yaml from the Python models in permisos/.
crds: $(VENV)/.installed
	$(PY) -m permisos.crdgen

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
