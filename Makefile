# vsrlab — every target sets up .venv on first use (torch pinned first, never torchvision).
#   make train        train the default experiment on the embedded synthetic data
#   make test         run the test suite (what CI runs)
#   make lint         ruff: the rule set of pyproject.toml, and the formatting
#   make test-all     also the slow tests (minutes)
#   make test-slow    only the slow tests
#   make test-slurm   the SLURM tests: a real two-node cluster with accounting (scripts/slurm_local.sh; installs it as root)
#   make analyze      vsrlab-analyze (LAM, offsets vs flow, feature semantics) of the newest `make train`
#                     checkpoint (CKPT=... another); e.g. make analyze ARGS="tool=offsets"
#   make sweep-demo   a 2 x 2 G x N sweep on the synthetic data (submitit local launcher), then its report;
#                     run it again: finished jobs are skipped and only the report is printed
#   make reproduce STUDY=<name>  rerun a study of experiments/ that has a run.sh (alignment_benchmark, extreme_sr);
#                     its tables land in that folder (docs/reproduction.md lists every study)
#   make bench        alignment benchmark -> docs/benchmarks.md
#   make bench-models training steps, inference and the alignment op of the models, against BasicSR and
#                     RethinkVSRAlignment (source checkouts: BASICSR=... PSRT=...) -> docs/benchmarks.md;
#                     e.g. make bench-models BASICSR=../BasicSR PSRT=../RethinkVSRAlignment ARGS="--device cuda"
#   make bench-data   data-loader benchmark (folders vs LMDB) -> docs/benchmarks.md
#   make lock         re-resolve requirements.lock (every package pinned) from pyproject.toml's ranges
# Installs are locked: .venv gets exactly the versions of requirements.lock (LOCK= resolves the
# ranges of pyproject.toml instead). Pass extra Hydra overrides with ARGS="...", extra pytest
# options with PYTEST_ARGS="...".

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_VERSION := 2.13.0
PIP_VERSION := 26.3
LOCK ?= requirements.lock
STAMP := $(VENV)/.installed-$(TORCH_VERSION)

.PHONY: install lock lint train eval infer analyze sweep-demo reproduce test test-all test-slow test-slurm bench bench-models \
	bench-data clean

# torch first (the CPU or CUDA build of this machine's pip configuration), then the locked
# versions of everything else, then vsrlab itself without re-resolving its dependencies
$(STAMP): pyproject.toml $(LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet pip==$(PIP_VERSION)
	$(BIN)/python -m pip install --quiet torch==$(TORCH_VERSION)
	if [ -n "$(LOCK)" ]; then $(BIN)/python -m pip install --quiet -r $(LOCK) && \
		$(BIN)/python -m pip install --quiet --no-deps -e . ; \
	else $(BIN)/python -m pip install --quiet -e ".[dev]"; fi
	@if $(BIN)/python -c "import torchvision" >/dev/null 2>&1; then echo "torchvision is installed in $(VENV): remove it (see README)"; exit 1; fi
	touch $(STAMP)

# pip-compile (pip-tools) resolves with pip's own finder, so torch is this machine's build; its local
# version tag (+cpu) is dropped so that the lock serves CUDA machines too
lock:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet pip==$(PIP_VERSION) "pip-tools>=7.4" torch==$(TORCH_VERSION)
	$(BIN)/pip-compile --quiet --upgrade --extra dev --strip-extras --allow-unsafe --no-emit-index-url \
		--no-emit-find-links --output-file requirements.lock pyproject.toml
	sed -i -E 's/^(torch==[0-9.]+)\+[a-z0-9]+/\1/' requirements.lock
	@if grep -q '^torchvision' requirements.lock; then echo "torchvision in requirements.lock"; exit 1; fi

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

train: $(STAMP)
	$(BIN)/vsrlab-train $(ARGS)

eval: $(STAMP)
	$(BIN)/vsrlab-eval $(ARGS)

infer: $(STAMP)
	$(BIN)/vsrlab-infer $(ARGS)

# the newest checkpoint that `make train` wrote (logs/ as below), unless CKPT is given
CKPT ?= $(shell ls -t "$${VSRLAB_ROOT:-.}"/logs/train/runs/*/checkpoints/last.ckpt 2>/dev/null | head -n 1)
analyze: $(STAMP)
	@if [ -z "$(CKPT)" ]; then echo "no checkpoint: run make train first, or pass CKPT=<path>"; exit 1; fi
	$(BIN)/vsrlab-analyze ckpt_path=$(CKPT) $(ARGS)

# logs/ is relative to $VSRLAB_ROOT (default: this directory), as in conf/paths/default.yaml
sweep-demo: $(STAMP)
	$(BIN)/vsrlab-train -m sweep=sweep_demo hydra/launcher=local $(ARGS)
	$(BIN)/vsrlab-report sweep_dir="$${VSRLAB_ROOT:-.}/logs/train/multiruns/sweep_demo"

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-all: $(STAMP)
	$(BIN)/python -m pytest -m "" $(PYTEST_ARGS)

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow $(PYTEST_ARGS)

test-slurm: $(STAMP)
	$(BIN)/python -m pytest -m slurm $(PYTEST_ARGS)

STUDIES := $(notdir $(patsubst %/run.sh,%,$(wildcard experiments/*/run.sh)))
reproduce: $(STAMP)
	@if [ -z "$(STUDY)" ] || [ ! -f experiments/$(STUDY)/run.sh ]; then echo "STUDY=<$(STUDIES)>"; exit 1; fi
	PATH="$(abspath $(BIN)):$$PATH" BIN="$(abspath $(BIN))" bash experiments/$(STUDY)/run.sh

bench: $(STAMP)
	$(BIN)/python -m scripts.bench.align $(ARGS)

# BASICSR / PSRT: source checkouts of BasicSR and RethinkVSRAlignment (reference rows; skipped without)
bench-models: $(STAMP)
	$(BIN)/python -m scripts.bench.models $(if $(BASICSR),--basicsr "$(BASICSR)") \
		$(if $(PSRT),--psrt "$(PSRT)") $(ARGS)

bench-data: $(STAMP)
	$(BIN)/python -m scripts.bench.data $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache
