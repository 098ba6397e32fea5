# vsrlab — every target sets up .venv on first use (torch pinned first, never torchvision).
#   make train        train the default experiment on the embedded synthetic data
#   make test         run the test suite (what CI runs)
#   make test-all     also the slow tests (minutes)
#   make test-slow    only the slow tests
#   make sweep-demo   a 2 x 2 G x N sweep on the synthetic data (submitit local launcher), then its report;
#                     run it again: finished jobs are skipped and only the report is printed
#   make bench        alignment benchmark -> docs/benchmarks.md
#   make bench-data   data-loader benchmark (folders vs LMDB) -> docs/benchmarks.md
# Pass extra Hydra overrides with ARGS="...", extra pytest options with PYTEST_ARGS="...".

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_VERSION := 2.13.0
STAMP := $(VENV)/.installed-$(TORCH_VERSION)

.PHONY: install train eval infer sweep-demo test test-all test-slow bench bench-data clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==$(TORCH_VERSION)
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@if $(BIN)/python -c "import torchvision" >/dev/null 2>&1; then echo "torchvision is installed in $(VENV): remove it (see README)"; exit 1; fi
	touch $(STAMP)

install: $(STAMP)

train: $(STAMP)
	$(BIN)/vsrlab-train $(ARGS)

eval: $(STAMP)
	$(BIN)/vsrlab-eval $(ARGS)

infer: $(STAMP)
	$(BIN)/vsrlab-infer $(ARGS)

# logs/ is relative to $VSRLAB_ROOT (default: this directory), as in conf/paths/default.yaml
sweep-demo: $(STAMP)
	$(BIN)/vsrlab-train -m experiment=sweep_demo hydra/launcher=local $(ARGS)
	$(BIN)/vsrlab-report "$${VSRLAB_ROOT:-.}/logs/train/multiruns/sweep_demo"

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-all: $(STAMP)
	$(BIN)/python -m pytest -m "" $(PYTEST_ARGS)

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python scripts/bench_align.py $(ARGS)

bench-data: $(STAMP)
	$(BIN)/python scripts/bench_data.py $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache
