# The two commands of the README. Each installs whatever is missing first (scripts/setup.sh).
VENV ?= .venv
BIN := $(VENV)/bin
SAMPLE ?= sample
export PYOPENGL_PLATFORM ?= osmesa

.PHONY: demo test setup lint

## demo: generate the procedural sample and run every stage that exists on it
demo: setup
	$(BIN)/fer3d-bench make-sample $(SAMPLE) --overwrite
	$(BIN)/fer3d-bench scan $(SAMPLE)/bu3dfe --dataset bu3dfe
	$(BIN)/fer3d-bench scan $(SAMPLE)/bosphorus --dataset bosphorus
	$(BIN)/fer3d-bench scan $(SAMPLE)/cald3r-mend3s --dataset cald3r-mend3s
	mkdir -p $(SAMPLE)/render
	$(BIN)/fer3d-bench render-depth $(SAMPLE)/bu3dfe --dataset bu3dfe --out $(SAMPLE)/render/bu3dfe --workers 2
	$(BIN)/fer3d-bench render-depth $(SAMPLE)/bosphorus --dataset bosphorus --out $(SAMPLE)/render/bosphorus
	$(BIN)/fer3d-bench render-depth $(SAMPLE)/cald3r-mend3s --dataset cald3r-mend3s --out $(SAMPLE)/render/cald3r-mend3s
	$(BIN)/fer3d-bench build-dataset --bu3dfe $(SAMPLE)/bu3dfe --bosphorus $(SAMPLE)/bosphorus \
	  --cald3r-mend3s $(SAMPLE)/cald3r-mend3s --render-dir $(SAMPLE)/render --out $(SAMPLE)/merged.h5
	$(BIN)/fer3d-bench inspect $(SAMPLE)/merged.h5
	$(BIN)/fer3d-bench splits generate --dataset $(SAMPLE)/merged.h5 --out $(SAMPLE)/manifests \
	  --protocol bu3dfe-legacy --protocol bu3dfe-full --protocol cald3r-mend3s \
	  --protocol merged --protocol cross-dataset
	$(BIN)/fer3d-bench splits show $(SAMPLE)/manifests/bu3dfe-full/1.0.0.json
	$(BIN)/fer3d-bench train --dataset $(SAMPLE)/merged.h5 --out $(SAMPLE)/runs/bu3dfe-full-f0 \
	  --manifest $(SAMPLE)/manifests/bu3dfe-full/1.0.0.json --fold 0 --preset tiny --device cpu

## test: the test suite (what CI runs)
test: setup
	$(BIN)/python -m pytest

setup:
	@bash scripts/setup.sh

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check .
