# One entry point for operators and CI. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
export PATH := $(BIN):$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
# Nothing of the sandbox is exported here: ansible-playbook finds the sandbox's endpoints in
# inventory/sandbox itself, the tests build their own environment, and the few targets that
# run other tools against the sandbox wrap them in `atp_sandbox run` (one process each).
SANDBOX := PYTHONPATH=$(CURDIR)/sandbox $(BIN)/python -m atp_sandbox
SANDBOX_INSTANCES ?= 1
export SANDBOX_INSTANCES

.PHONY: help setup sandbox-up sandbox-down sandbox-status demo test lint sanity unit \
        sandbox-test integration molecule bench bench-short clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(VENV)/.installed: requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.txt
	touch $@

setup: $(VENV)/.installed ## venv with pinned deps; check collections against requirements.yml
	$(BIN)/python scripts/check_collections.py requirements.yml

sandbox-up: setup ## start the local SSM sandbox (SANDBOX_INSTANCES=N, default 1; SANDBOX_FLEET=N backends)
	$(SANDBOX) up --instances $(SANDBOX_INSTANCES) $(if $(SANDBOX_FLEET),--fleet $(SANDBOX_FLEET))

sandbox-down: setup ## remove sandbox instances and stop the stand-ins
	$(SANDBOX) down

sandbox-status: ## show sandbox instances, their EC2 registration and the stand-ins
	$(SANDBOX) status

demo: sandbox-up ## deploy the sample backend to the sandbox over SSM and print smoke results
	$(BIN)/ansible-playbook deploy.yml

lint: setup ## yamllint, ansible-lint (production profile, offline), ruff
	$(BIN)/yamllint -s .
	@# the sandbox inventory needs a running sandbox: lint the playbooks without any inventory
	ANSIBLE_INVENTORY=/dev/null $(BIN)/ansible-lint
	$(BIN)/ruff check .

# ansible-test wants the collection as the working directory; pslint (PowerShell) and shellcheck
# have nothing to check here and are not installed.
sanity: setup ## ansible-test sanity of the atp.deploy collection (offline, the venv's Python)
	$(BIN)/python scripts/sanity_get_pip.py --install-cache
	cd collections/ansible_collections/atp/deploy && $(BIN)/ansible-test sanity \
		--python $$($(BIN)/python -c 'import sys; print("%d.%d" % sys.version_info[:2])') \
		--skip-test pslint --skip-test shellcheck --color no

unit: setup ## pytest unit tests of modules, filters, sandbox, sample app and the bench logic
	$(BIN)/python -m pytest -q tests/unit tests/bench/test_bench_logic.py

sandbox-test: sandbox-up ## the real aws_ssm plugin against the sandbox stand-ins
	$(BIN)/python -m pytest -q tests/sandbox

integration: sandbox-up ## deploy/rollback/diagnose/port-forward runs and fault tests in the sandbox
	$(BIN)/python -m pytest -q -rA tests/integration

molecule: sandbox-up ## molecule scenarios over aws_ssm in the sandbox
	cd $(CURDIR) && $(SANDBOX) run -- $(BIN)/molecule test --all

test: SANDBOX_INSTANCES = 4
test: lint sanity unit sandbox-test integration bench-short molecule ## everything CI runs (molecule last: it resets the sandbox)

# The benchmark has its own (fourth) sandbox instance; docs/benchmarks.md says what it measures.
bench: SANDBOX_INSTANCES = 4
bench: sandbox-up ## deploy.yml vs a naive playbook, modeled SSM latency: table + docs/benchmarks.* (~70 min)
	$(BIN)/python tests/bench/bench_deploy.py

bench-short: SANDBOX_INSTANCES = 4
bench-short: sandbox-up ## CI form of bench: sample app, one-file change + rollback; fails on a failed probe
	$(BIN)/python tests/bench/bench_deploy.py --short --fail-on-probe

clean: sandbox-down ## remove the sandbox and local caches (keeps .venv)
	rm -rf .sandbox .artifacts .cache
