# xmppd — the operator interface: make install | run | test | lint
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
CONFIG ?= etc/xmppd.toml

.PHONY: install install-test run test lint clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# Editable in "compat" mode: the repo root goes on sys.path, so twistd finds
# twisted/plugins/xmppd_plugin.py and code changes need no reinstall.
$(VENV)/.installed: $(PY) setup.cfg pyproject.toml
	$(PY) -m pip install -q -e . --config-settings editable_mode=compat
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PY) -m pip install -q -e '.[test,postgresql,cluster]' --config-settings editable_mode=compat
	touch $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

# A self-signed certificate for localhost, then the server in the foreground.
run: install
	$(PY) -m xmppd.stream.selfsigned var/tls/localhost.crt var/tls/localhost.key localhost
	$(VENV)/bin/twistd --pidfile= -n xmppd --config $(CONFIG)

test: install-test
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install-test
	$(VENV)/bin/ruff check xmppd tests twisted bench

# xmppd beside Prosody (installed with apt if missing), every workload; about 15 minutes on
# 2 cores. The table goes to the terminal, the JSON to bench/results/. BENCH_QUICK=1: tiny run.
.PHONY: bench
bench: $(VENV)/.installed-bench
	$(PY) -m bench.run $(BENCH_ARGS)

# One, two and three cluster nodes on PostgreSQL and Redis (README, Clustering); BENCH_QUICK=1
# or CLUSTER_BENCH_ARGS="--quick" for a smoke test, "--nodes 1,2" for fewer.
.PHONY: bench-cluster
bench-cluster: $(VENV)/.installed-bench install-test
	$(PY) -m bench.cluster $(CLUSTER_BENCH_ARGS)

$(VENV)/.installed-bench: $(VENV)/.installed
	$(PY) -m pip install -q -e '.[bench]' --config-settings editable_mode=compat
	touch $@

# A local cluster to try (README, Clustering): PostgreSQL, Redis and three xmppd nodes on
# loopback, in a temporary directory; Ctrl-C stops them all. CLUSTER_ARGS="--nodes 2".
.PHONY: cluster
cluster: install-test
	$(PY) scripts/cluster.py $(CLUSTER_ARGS)

clean:
	rm -rf $(VENV) var build *.egg-info
