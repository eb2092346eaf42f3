# The lab's two commands:  make lab   (open JupyterLab)   and   make test   (everything CI runs).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.labkit-setup
NBVAL_PROFILE ?= smoke
# pytest-xdist workers for make test: the 2-core CI machine runs two test files (two notebooks) at a time, one torch
# thread each, which idles no core while a test waits on a kernel, a browser or a subprocess (TEST_WORKERS=0: serial)
TEST_WORKERS ?= 2
# in the order the conftest files give (longest first), not xdist's default (most tests first)
XDIST  := $(if $(filter-out 0,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder)

.PHONY: assignments setup lab test test-unit test-fast test-notebooks lint typecheck strip clean-venv help paper-check gpu-check

help:
	@echo "make lab    - set up .venv, make Fashion-MNIST available, open JupyterLab on notebooks/"
	@echo "make test   - set up .venv, lint, type-check, run pytest over tests/, then nbval over every notebook (smoke;"
	@echo "              notebooks/conftest.py runs every cell twice and checks that no figure shows twice)"
	@echo "make test-fast - the unit tests without the slow and browser ones (under a minute)"
	@echo "make lint / make typecheck - ruff over labkit and tests / mypy over labkit"
	@echo "make setup  - only create/refresh .venv (safe and fast to repeat)"
	@echo "make strip  - remove outputs from every notebook before committing"
	@echo "make paper-check - the paper profile of every method on one GPU (about 10 min), then results/paper-check/paper/fashion-mnist/leaderboard.md"

setup: $(STAMP)

# Re-runs only when pyproject.toml changes; pip itself skips what is already installed. (Not --no-compile: it saves
# 23 s of install on a 2-core Zen 3, but every test that starts a fresh interpreter then compiles torch again, and
# the unit tests took 60 s longer.)
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[test]"
	@# nbgrader's JupyterLab and server extensions are for instructors (docs/course.md): off in the learners' lab
	$(BIN)/python -m labkit course extensions off >/dev/null
	@# jsonschema imports rfc3987-syntax when it is there, which builds an Earley parser at import: 1.7 s in every
	@# process that validates a notebook (Jupyter's server, each widget kernel, nbval, nbgrader). It only serves
	@# jsonschema's optional "iri" format check, which nothing here uses; pip check stays clean (docs/speed.md)
	$(BIN)/python -m pip uninstall -y -q rfc3987-syntax
	@touch $(STAMP)

# python -m labkit lab adds --allow-root for root and --no-browser without a display (tests/test_make_lab.py runs it).
lab: setup
	-$(BIN)/python -m labkit data fetch fashion-mnist
	$(BIN)/python -m labkit lab

# nbgrader course folder: full notebooks in source/, student versions in release/ (docs/course.md)
assignments: setup
	$(BIN)/python -m labkit course build --out course/nbgrader

test-unit: setup
	$(BIN)/python -m pytest tests -q --durations=15 $(XDIST)

test-fast: setup
	$(BIN)/python -m pytest -m "not slow and not browser" tests -q

lint: setup
	$(BIN)/ruff check labkit tests docs notebooks/conftest.py

typecheck: setup
	$(BIN)/mypy

# notebooks/conftest.py: every cell runs twice in a row, under JupyterLab's inline backend, and no figure shows twice.
test-notebooks: setup
	LABKIT_PROFILE=$(NBVAL_PROFILE) $(BIN)/python -m pytest --nbval-lax -p no:cacheprovider notebooks -q $(XDIST)

# mypy (one core, about 25 s) runs beside the unit tests instead of before them; either failing fails `make test`
test: lint
	@log=$$(mktemp); $(MAKE) --no-print-directory typecheck > $$log 2>&1 & tc=$$!; \
	$(MAKE) --no-print-directory test-unit; unit=$$?; \
	wait $$tc; typed=$$?; cat $$log; rm -f $$log; \
	test $$unit -eq 0 && test $$typed -eq 0
	@$(MAKE) --no-print-directory test-notebooks

# On a GPU machine; on the CPU, `python -m labkit paper-check --scale tiny --out-dir /tmp/pc` checks the plumbing.
paper-check: setup
	$(BIN)/python -m labkit paper-check

# On a GPU machine: every notebook's main run on the gpu profile, its estimate beside the measured time (docs/cost.md).
gpu-check: setup
	LABKIT_PROFILE=gpu $(BIN)/python -m labkit cost-check --notebooks --profile gpu

strip: setup
	$(BIN)/python -m labkit.teaching.notebook_hygiene --strip notebooks/*.ipynb

# DEVELOPING.md's module table, generated from the package (standard library only; tests/test_layout.py checks it).
.PHONY: docs
docs:
	$(PYTHON) docs/module_table.py

clean-venv:
	rm -rf $(VENV)
