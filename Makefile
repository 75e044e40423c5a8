# The two commands of the README. Each installs whatever is missing first (scripts/setup.sh).
VENV ?= .venv
BIN := $(VENV)/bin
DEMO ?= demo
export PYOPENGL_PLATFORM ?= osmesa

.PHONY: demo test setup lint

## demo: the main job on the generated sample: sample, render, build, splits, evaluate, report
demo: setup
	$(BIN)/fer3d-bench demo --out $(DEMO)

## test: the test suite (what CI runs), with the one-node Slurm cluster of its slurm tests
test: setup
	VENV=$(VENV) bash scripts/test.sh

setup:
	@bash scripts/setup.sh

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check .
