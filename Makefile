# One-command set-up: `make demo` and `make test` create .venv, install the package with
# its extras and the Debian packages headless napari needs, then run.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
OUT    ?= outputs
# TensorFlow (core tests, training) and a napari canvas must not share a process
# (see docs/architecture.md), so the suite runs in two pytest processes: the GUI tests
# (tests/gui, real canvas under Xvfb) apart from everything else.
PYTEST := $(BIN)/python -m pytest -p no:cacheprovider

.PHONY: install system-deps demo test test-core test-gui bench bench-page wheel-smoke lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[all]"
	touch $(STAMP)

system-deps:
	bash scripts/install_system_deps.sh

install: system-deps $(STAMP)

demo: install
	$(BIN)/xray-denoise demo --out $(OUT)

test: install
	$(PYTEST) -m "not slow" --ignore=tests/gui tests
	$(PYTEST) -m "not slow" tests/gui

bench: install
	$(BIN)/python benchmarks/run_all.py

# docs/benchmarks.md from the JSON results under docs/ (make bench does it at its end)
bench-page: install
	$(BIN)/python scripts/benchmark_page.py

# the wheel as a user installs it: clean venv, not editable, run outside the tree
wheel-smoke: install
	PYTHON=$(PYTHON) bash scripts/wheel_smoke.sh

# ruff's linter and its formatter's check, as .ci/run and pre-commit run them
LINT_PATHS := src tests benchmarks scripts
lint: install
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)

clean:
	rm -rf $(VENV) $(OUT) build dist
