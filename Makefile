# One entry point for operators and CI. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
export PATH := $(BIN):$(CURDIR)/sandbox/bin:$(PATH)
export PYTHONPATH := $(CURDIR)/sandbox
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
# The sandbox's AWS profile (ssm/s3 endpoints = local stand-ins); written by sandbox-up.
export AWS_CONFIG_FILE := $(CURDIR)/.sandbox/aws/config
export AWS_SHARED_CREDENTIALS_FILE := $(CURDIR)/.sandbox/aws/credentials
export AWS_EC2_METADATA_DISABLED := true
SANDBOX_INSTANCES ?= 1
export SANDBOX_INSTANCES

.PHONY: help setup sandbox-up sandbox-down sandbox-status demo test lint unit \
        sandbox-test integration molecule bench clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(VENV)/.installed: requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.txt
	touch $@

setup: $(VENV)/.installed ## venv with pinned deps; check collections against requirements.yml
	$(BIN)/python scripts/check_collections.py requirements.yml

sandbox-up: setup ## start the local SSM sandbox (SANDBOX_INSTANCES=N, default 1)
	$(BIN)/python -m atp_sandbox up --instances $(SANDBOX_INSTANCES)

sandbox-down: setup ## remove sandbox instances and stop the stand-ins
	$(BIN)/python -m atp_sandbox down

sandbox-status: ## show sandbox instances and stand-ins
	$(BIN)/python -m atp_sandbox status

demo: sandbox-up ## deploy the sample backend to the sandbox over SSM and print smoke results
	$(BIN)/ansible-playbook deploy.yml

lint: setup ## yamllint, ansible-lint (production profile, offline), ruff
	$(BIN)/yamllint -s .
	$(BIN)/ansible-lint
	$(BIN)/ruff check .

unit: setup ## pytest unit tests of modules, filters, sandbox and sample app
	$(BIN)/python -m pytest -q tests/unit

sandbox-test: sandbox-up ## the real aws_ssm plugin against the sandbox stand-ins
	$(BIN)/python -m pytest -q tests/sandbox

integration: sandbox-up ## deploy/rollback/diagnose/port-forward runs and fault tests in the sandbox
	$(BIN)/python -m pytest -q -rA tests/integration

molecule: sandbox-up ## molecule scenarios over aws_ssm in the sandbox
	cd $(CURDIR) && $(BIN)/molecule test --all

test: SANDBOX_INSTANCES = 3
test: lint unit sandbox-test integration molecule ## everything CI runs (molecule last: it resets the sandbox)

bench: sandbox-up ## remote round trips and timings of a deploy (prints figures)
	$(BIN)/python tests/bench/bench_deploy.py

clean: sandbox-down ## remove the sandbox and local caches (keeps .venv)
	rm -rf .sandbox .artifacts .cache
