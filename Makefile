# Rune: developer entry points. Everything runs from the project's own .venv, which the
# first target that needs it creates, so a fresh clone needs only python3 and make.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SOURCES := rune_proto rune_tui tests bench
PYTEST_ARGS ?=

.PHONY: venv test lint clean

venv: $(STAMP)

# Re-install only when the dependencies (pyproject.toml) change; the editable install
# picks up source edits by itself.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

# NO_COLOR changes Textual's rendering and breaks snapshot tests.
test: $(STAMP)
	env -u NO_COLOR $(BIN)/python -m pytest -q $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check $(SOURCES)
	$(BIN)/ruff format --check $(SOURCES)
	$(BIN)/mypy

# Later targets land beside these with the features they drive:
#   demo        – a local server plus rune-tui against it (with the TUI)
#   bench       – the benchmarks under bench/
#   screenshots – regenerate screenshots/ from the TUI

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
