# The two commands a fresh machine needs: `make run` and `make test`.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
RUN_DIR ?= /var/tmp/cis/dev

.PHONY: run test deps venv binaries proto unit integration lint bench down status clean

run: deps ## install what is missing, start the local stack, CIS and the virtual node
	$(VENV)/bin/cis dev --run-dir $(RUN_DIR) up

down: ## stop everything `make run` started
	$(VENV)/bin/cis dev --run-dir $(RUN_DIR) down

status:
	$(VENV)/bin/cis dev --run-dir $(RUN_DIR) status

test: deps ## unit tests, then integration tests against the real local stack
	$(VENV)/bin/pytest -p no:cacheprovider -q tests/unit
	$(VENV)/bin/pytest -p no:cacheprovider -q -m integration tests/integration

unit: venv
	$(VENV)/bin/pytest -q tests/unit

integration: deps
	$(VENV)/bin/pytest -q -m integration tests/integration

deps: venv binaries proto

venv: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

binaries: ## build or fetch etcd, Kubernetes, KWOK, Elasticsearch, Filebeat into the cache
	bash deploy/local/install.sh

proto: venv
	$(PY) -m cis.api.protogen

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy cis billing cis_logging vk_provider

clean:
	rm -rf $(VENV) build *.egg-info
