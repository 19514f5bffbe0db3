# mini_runtime: build Docker from scratch in Python. Run as root on Debian 12 / Ubuntu 24.04.
VENV ?= $(or $(MINI_VENV),$(CURDIR)/.venv)
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: setup setup-test test test-v2 test-fast demo lab doctor bench listings clean help

help:
	@echo "make setup    install what the runtime and tests need (scripts/provision.sh)"
	@echo "make demo     a narrated tour of what works so far"
	@echo "make test     every test: unit, integration (root), notebooks, grader honesty, listings,"
	@echo "              then the kernel-facing tests again inside a cgroup-v2 guest kernel"
	@echo "make test-v2  only the kernel-facing tests, inside the cgroup-v2 guest (user-mode-linux)"
	@echo "make lab      JupyterLab for the notebooks (as root, token printed)"
	@echo "make doctor   check this machine for everything the course needs"
	@echo "make bench    mini against runc, crun, podman and docker, as ratios (installs them first)"

setup:
	@bash scripts/provision.sh

setup-test:
	@bash scripts/provision.sh --test

test: setup-test
	@bash scripts/test.sh $(PY) $(PYTEST_ARGS)

test-v2: setup-test
	$(PY) scripts/v2_guest.py $(PYTEST_ARGS)

test-fast: setup
	$(PY) -m pytest -m 'not slow' $(PYTEST_ARGS)

demo: setup
	@$(PY) scripts/demo.py

lab:
	@bash scripts/provision.sh --lab
	@MINI_VENV=$(VENV) bash scripts/lab.sh

doctor: setup
	@$(VENV)/bin/mini doctor

bench:
	@bash scripts/provision.sh --bench
	@$(PY) -m bench $(BENCH_ARGS)

listings: setup
	@$(PY) scripts/listings.py --update

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
