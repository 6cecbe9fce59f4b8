# augbench: `make bench` (set up + the quick benchmark), `make test` (the test suite).
# Both create .venv on a fresh machine; nothing needs installing by hand.
PYTHON ?= python3
VENV ?= .venv
BIN := $(abspath $(VENV))/bin
export PATH := $(BIN):$(PATH)
export TF_CPP_MIN_LOG_LEVEL ?= 2
BUSI ?= ../shared/datasets/busi

.PHONY: bench test venv lint bench-busi bench-check horovod chromium clean

$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip setuptools wheel
	$(BIN)/pip install -q -c requirements.lock -e '.[dev]'
	touch $@

venv: $(VENV)/.installed

# The main job: the `quick` profile of the DVC pipeline on the embedded phantom. Horovod is built
# first only when the `scaling` stage will run (it starts horovodrun): `scaling.enabled` in the
# resolved params.yaml, which the quick profile switches off. A bad params.yaml stops here, named.
bench: venv
	@scaling=$$(augbench params --get scaling.enabled) || exit $$?; \
	if [ "$$scaling" = true ]; then $(MAKE) --no-print-directory horovod; fi
	dvc repro
	@sed -n '/^## Test-set metrics/,/^!\[ROC/p' reports/results.md

# The same pipeline on BUSI (benign vs malignant) in busi-run/, a project of its own (augbench init +
# dvc init --no-scm on first use; its params.yaml records the options). The positive
# control (fresh phantom images) exists for the phantom only, so BUSI runs the other methods and controls.
BUSI_METHODS ?= none,geometric-flipping,control-shuffled-labels
bench-busi: venv
	augbench run --workdir busi-run --data $(BUSI) --set dataset.name=busi --methods $(BUSI_METHODS)

# Horovod is built first (once, ~5-10 min): the `horovod`-marked tests start horovodrun.
test: venv horovod chromium
	pytest -q --durations=25

# Headless Chromium for the browser test of reports/index.html (tests/test_report_html.py skips
# without it). Best effort, never fails: apt-get as root, otherwise says how to install it.
chromium:
	@if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 \
	    || command -v google-chrome >/dev/null 2>&1 || [ -n "$$AUGBENCH_CHROMIUM" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing chromium (apt-get) for the browser test of reports/index.html"; \
	    (apt-get install -y -q chromium >/dev/null 2>&1 \
	     || (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1)) \
	    || echo "could not install chromium: the browser test will be skipped"; \
	else \
	    echo "no Chromium: the browser test of reports/index.html will be skipped;" \
	         "install it (Debian/Ubuntu: sudo apt-get install chromium) or set AUGBENCH_CHROMIUM=/path/to/chrome"; \
	fi

# Speed-ratio checks (tests/benchmarks, compared with tests/benchmarks/baseline.json); runs are
# kept under .benchmarks/ (git-ignored) and their history is plotted to .benchmarks/history.png.
bench-check: venv horovod
	pytest -q -p no:cacheprovider tests/benchmarks --benchmark-autosave --benchmark-json=.benchmarks/latest.json
	augbench bench-check .benchmarks/latest.json --require-all
	augbench bench-history --out .benchmarks/history.png

# ruff, then the import contracts of pyproject.toml [tool.importlinter] (bench never imports methods).
lint: venv
	ruff check .
	lint-imports

# Horovod 0.28.1 with TensorFlow + Gloo, no MPI (README "Stack, and why it is pinned"); ~5 min to build.
# Needs cmake and a C++ compiler (build-essential); a cmake from PyPI is installed when none is found.
$(VENV)/.horovod: $(VENV)/.installed
	command -v cmake >/dev/null 2>&1 || $(BIN)/pip install -q cmake
	HOROVOD_WITH_TENSORFLOW=1 HOROVOD_WITH_GLOO=1 HOROVOD_WITHOUT_MPI=1 \
	HOROVOD_WITHOUT_PYTORCH=1 HOROVOD_WITHOUT_MXNET=1 \
	$(BIN)/pip install --no-build-isolation -c requirements.lock horovod==0.28.1
	$(BIN)/python -c "import horovod.tensorflow as hvd; hvd.init(); assert hvd.gloo_enabled()"
	touch $@

horovod: $(VENV)/.horovod

clean:
	rm -rf data runs busi-run .pytest_cache .ruff_cache .import_linter_cache
