# perceptual-sweeps: every target that runs Python creates .venv first (and again when
# pyproject.toml changes). `make venv` installs no TensorFlow; `make test` adds the tf extra
# (TFDS preparation, TF checkpoint import) and wandb, so those paths stay tested.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TF_STAMP := $(VENV)/.installed-tf

SWEEP ?= depth
PRESET ?= embedded
LAUNCHER ?= local
JOBS ?= 1
RUNS ?= runs
DATA ?= fashion_mnist
ARGS ?=
MODEL ?= resnet18
BATCH ?= 256
SIZE ?= 32
WIDTH ?= 0.25
BENCH_ARGS ?=

.PHONY: venv test test-fast sweep eval report status bench gpu-wheels data lint clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

$(TF_STAMP): $(STAMP)
	$(PY) -m pip install -q -e '.[dev,tf,wandb]'
	@touch $(TF_STAMP)

# Two workers, each taking whole test files (--dist loadfile: a file's fixtures and its Slurm
# cluster stay in one process); the trainers, data preparation and proxy builds the tests start
# are safe side by side, as in a sweep.
test: $(TF_STAMP)
	$(PY) -m pytest -q -n 2 --dist loadfile $(PYTEST_ARGS)

test-fast: $(TF_STAMP)
	$(PY) -m pytest -q -m "not slow and not slurm and not multiprocess" $(PYTEST_ARGS)

sweep: $(STAMP)
	$(PY) -m launch $(SWEEP) --preset $(PRESET) --launcher $(LAUNCHER) --jobs $(JOBS) --runs-dir $(RUNS) $(ARGS)

eval: $(STAMP)
	$(PY) -m evaluator --runs=$(RUNS)/$(SWEEP) $(ARGS)

report: $(STAMP)
	$(PY) -m evaluator.report $(if $(filter all,$(SWEEP)),$(RUNS) --all,$(RUNS)/$(SWEEP))

status: $(STAMP)
	$(PY) -m launch $(SWEEP) --preset $(PRESET) --runs-dir $(RUNS) --status

bench: $(STAMP)
	$(PY) -m bench --model $(MODEL) --batch $(BATCH) --size $(SIZE) --width $(WIDTH) $(BENCH_ARGS)

# The pure-Python wheels bench/gpu_check.sh installs on a GPU machine without PyPI access (the
# versions this virtualenv holds); bench/wheels/ is git-ignored, so name it when copying over.
GPU_WHEELS := ml-collections filelock
gpu-wheels: $(STAMP)
	$(PY) -m pip download -q --no-deps --only-binary=:all: -d bench/wheels \
	  $(foreach w,$(GPU_WHEELS),$(w)==$$($(PY) -c 'import importlib.metadata as m; print(m.version("$(w)"))'))
	@ls bench/wheels

data: $(STAMP)
	$(PY) -m trainer.data $(DATA) $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
