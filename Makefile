# `make train` and `make test` each start by installing into .venv (once; again when pyproject.toml changes).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
ARGS ?=

.PHONY: install train test lint bench clean
install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e ".[dev]"
	touch $@

train: install  ## train the default recipe (classification, mnist5k); extra overrides in ARGS="..."
	$(PY) train.py $(ARGS)

test: install  ## the whole test suite, on 2 processes
	$(PY) -m pytest -n 2

lint: install
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) logs outputs multirun
