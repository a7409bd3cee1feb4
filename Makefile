# Set-up, demo, tests and benchmarks. `make demo` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
ARSEG := $(VENV)/bin/arseg
# The CPU wheel of torch is pinned here: an unpinned install pulls a multi-GB CUDA build.
TORCH_PIN ?= torch==2.13.0
SAMPLE := samples/sample.mp4
DEMO_OUT := demo-out

.PHONY: setup demo test test-all bench lint clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_PIN)"
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

demo: setup
	$(ARSEG) info $(SAMPLE)
	$(ARSEG) motion $(SAMPLE) -o $(DEMO_OUT)/motion --to-key 12 --png --force
	@echo "demo: flow fields and colour-wheel PNGs in $(DEMO_OUT)/motion"

test: setup
	$(PY) -m pytest -q

test-all: setup
	$(PY) -m pytest -q -m ""

bench: setup
	@for b in benchmarks/bench_*.py; do echo "== $$b" >&2; $(PY) $$b || exit 1; done

lint: setup
	$(PY) -m compileall -q arseg_cli tests benchmarks

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache
