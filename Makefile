# Seawall: two commands do everything on a fresh Debian 12 machine (as root).
#   make demo   set up, then show the seed's recipe round-tripping through the CLI
#   make test   set up, then run every test
# Both are safe to run twice.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Every Debian package the code, tests, benchmarks and demo need: column 3 of packaging/debian-packages.tsv,
# the one list (tests/unit/test_install_truth.py fails when something runs a program it does not install).
APT_PACKAGES := $(shell awk -F'\t' '!/^#/ && NF >= 3 {print $$3}' packaging/debian-packages.tsv | sort -u)
DEMO_DB ?= /tmp/seawall-demo/seawall.db

BPF_OBJ := src/seawall/dataplane/xdp/bpf/blocklist.bpf.o
BPF_SRC := src/seawall/dataplane/xdp/bpf/blocklist.bpf.c

.PHONY: demo test lint setup apt bench bench-xdp bench-apply bench-raw bench-agent bench-cluster clean

setup: $(STAMP) $(BPF_OBJ)
	@$(PY) -m compileall -q src  # bytecode ahead: with PYTHONDONTWRITEBYTECODE set, every agent start compiled ~0.4 s of source

apt:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

$(STAMP): pyproject.toml | apt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,bench]'
	touch $(STAMP)

$(BPF_OBJ): $(BPF_SRC) $(wildcard src/seawall/dataplane/xdp/bpf/*.h) | apt
	clang -O2 -g -Wall -Werror -target bpf -I/usr/include/$$(gcc -dumpmachine) -Isrc/seawall/dataplane/xdp/bpf -c $< -o $@

demo: setup
	bash examples/demo.sh $(DEMO_DB)

# The guard rails, before any test: ruff, mypy and the layer contracts (import-linter);
# pyproject.toml says which rules and why.
lint: setup
	$(VENV)/bin/ruff check src tests bench examples
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache

test: lint
	$(PY) -m pytest -q

# Flood test (root): every contestant drops a UDP flood on a veth; writes bench/results/flood.json,
# docs/benchmarks.md and docs/benchmarks/flood-*.png. Quick (< 5 min): N = 1 and 10,000 single, 10,000 spread.
bench: setup
	$(PY) bench/flood/flood.py $(ARGS)

# The full flood test: N = 1, 10,000 and 1,000,000 x single and spread, every contestant.
bench-full: setup
	$(PY) bench/flood/flood.py --full $(ARGS)

.PHONY: bench-full bench-all

# Every benchmark of the project (bench-cluster needs etcd; see its target).
bench-all: bench-full bench-apply bench-xdp bench-raw bench-agent bench-cluster bench-prefixes bench-hostile

bench-apply: setup
	$(PY) bench/apply_million.py

# Quick (< 2 min): writes bench/results/xdp.json and docs/benchmarks/xdp.*; add ARGS=--full for more rounds.
bench-agent: setup
	$(PY) bench/agent_latency.py

bench-xdp: setup
	$(PY) bench/xdp.py $(ARGS)

# Three nodes + one etcd (root): writes bench/results/cluster.json and docs/benchmarks/cluster.md.
bench-cluster: setup
	$(PY) bench/cluster.py $(ARGS)

# Raw tier (root): writes bench/results/raw.json and docs/benchmarks/raw.md.
bench-raw: setup
	$(PY) bench/raw.py $(ARGS)

# Every prefix length through the agent (root, ~3 min): bench/results/short-prefixes.json, docs/benchmarks/short-prefixes.md.
bench-prefixes: setup
	$(PY) bench/short_prefixes.py $(ARGS)

# Hostile-input corpus (< 5 min): writes bench/results/hostile-corpus.json and docs/hardening-corpus.md.
bench-hostile: setup
	$(PY) bench/hostile_corpus.py $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
