# The two commands the README gives: `make demo` and `make test`. Both install into .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install demo test lint bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# CPU build of torch (pip's find-links provides it here); a bare `torch` would pull CUDA.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

install: $(BIN)/.installed

demo: install
	$(BIN)/python -m common.demo

lint: install
	$(BIN)/ruff check common sender receiver tests
	$(BIN)/mypy common

test: lint
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/gancodec bench --data $(DATA) --out runs/bench.json --plot runs/rd.png

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
