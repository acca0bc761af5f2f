# visgrad: every target creates .venv and installs on first use.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install test test-all lint train bench docs docs-serve clean-venv

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install "torch==2.14.1" "torchvision==0.29.1"
	$(PY) -m pip install -e ".[dev]"
	$(PY) -m pip install --no-deps "torchattacks==3.5.1"
	touch $(STAMP)

install: $(STAMP)

## Lint, then run the default test suite (fast; slow tests deselected).
test: lint
	$(PY) -m pytest

## Run every test including the ones marked slow.
test-all: $(STAMP)
	$(PY) -m pytest -m ""

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks scripts train.py visualize.py

## The main job: a default captioning run on the offline `shapes` dataset.
train: $(STAMP)
	$(PY) train.py $(ARGS)

## Benchmarks (print medians and ratios; figures recorded in BENCHMARKS.md).
bench: $(STAMP)
	$(PY) benchmarks/bench_recurrent.py
	$(PY) benchmarks/bench_captioning.py
	$(PY) benchmarks/bench_attention.py
	$(PY) benchmarks/bench_style.py
	$(PY) benchmarks/bench_data.py --cold

## The documentation site (MkDocs + Material, mkdocs.yml): build it into site/ (warnings fail), or serve it
## at http://127.0.0.1:8000 with live reload.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict

docs-serve: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs serve

clean-venv:
	rm -rf $(VENV)
