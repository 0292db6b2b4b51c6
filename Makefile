# Seawall: two commands do everything on a fresh Debian 12 machine (as root).
#   make demo   set up, then show the seed's recipe round-tripping through the CLI
#   make test   set up, then run every test
# Both are safe to run twice.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
APT_PACKAGES := python3-venv
DEMO_DB ?= /tmp/seawall-demo/seawall.db

.PHONY: demo test setup apt bench clean

setup: $(STAMP)

apt:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ] && ! $(PYTHON) -m venv --help >/dev/null 2>&1; then \
		echo "installing:$$missing"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

$(STAMP): pyproject.toml | apt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,bench]'
	touch $(STAMP)

demo: setup
	bash examples/demo.sh $(DEMO_DB)

test: setup
	$(PY) -m pytest -q

bench: setup
	$(PY) bench/apply_million.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
