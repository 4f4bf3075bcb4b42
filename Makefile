# Rune: developer entry points. Everything runs from the project's own .venv, which the
# first target that needs it creates, so a fresh clone needs only python3 and make.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check
STAMP := $(VENV)/.installed
SOURCES := rune_proto rune_tui tests bench scripts
PYTEST_ARGS ?=
# The exact, hash-checked versions installed: runtime.lock for the package alone (the
# wheel check), dev.lock for that plus the [dependency-groups] dev tools. `make lock`
# recompiles both from pyproject.toml with uv (installed into .venv only for that).
DEV_LOCK := requirements/dev.lock
RUNTIME_LOCK := requirements/runtime.lock
UV := uv>=0.9,<0.14
LOCK_ARGS ?=
COMPILE := $(BIN)/uv pip compile pyproject.toml --quiet --generate-hashes --universal $(LOCK_ARGS) \
	--python-version 3.11 --custom-compile-command "make lock"

.PHONY: venv test lint clean demo screenshots lock wheel-check

venv: $(STAMP)

# Re-install only when the dependencies change; the editable install picks up source
# edits by itself. The build backend comes from the lock too (--no-build-isolation).
$(STAMP): pyproject.toml $(DEV_LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --require-hashes -r $(DEV_LOCK)
	$(PIP) install --quiet --no-deps --no-build-isolation -e .
	touch $@

# Keeps the locked versions that still fit pyproject.toml (LOCK_ARGS=--upgrade: the newest
# that fit; --upgrade-package NAME for one). Commit the two files it writes.
lock:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet '$(UV)'
	$(COMPILE) --group pyproject.toml:dev -o $(DEV_LOCK)
	$(COMPILE) -c $(DEV_LOCK) -o $(RUNTIME_LOCK)

# Build the wheel, install it with runtime.lock in a fresh venv and run both commands
# from there (tests/distribution/test_wheel.py). Needs the package index for that venv.
wheel-check: $(STAMP)
	env -u NO_COLOR RUNE_WHEEL_CHECK=1 $(BIN)/python -m pytest -q tests/distribution/test_wheel.py

# NO_COLOR changes Textual's rendering and breaks snapshot tests.
test: $(STAMP)
	env -u NO_COLOR $(BIN)/python -m pytest -q $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check $(SOURCES)
	$(BIN)/ruff format --check $(SOURCES)
	$(BIN)/mypy

# A real rune-server on 127.0.0.1 (temporary, free registration), a bot that welcomes each
# new account, and rune-tui with its wizard pre-filled. Everything stops when rune-tui exits.
demo: $(STAMP)
	$(BIN)/python scripts/demo.py

# Drive the real app against a real local server with seeded mail; writes SVG and PNG
# (PNG needs rsvg-convert from librsvg2-bin, which the script installs if it can).
screenshots: $(STAMP)
	env -u NO_COLOR $(BIN)/python scripts/screenshots.py

# The benchmarks under bench/, side by side with the peers, measured in the same run;
# results and how to read them in docs/performance.md. Each prints its table and one
# PASS/SHORT line per goal and never fails on a number. Bench-only packages (aiosmtpd,
# aiosmtplib) are installed into .venv by the scripts when missing, not as project
# dependencies. BENCH_ARGS goes to the server benchmark: --quick for a smoke run, -n N.
#   1. server throughput: rune-server vs aiosmtpd + SQLite (bench/server_throughput.py)
#   2. rune-tui on a big mailbox vs neomutt, both in tmux (bench/tui_bench.py; installs
#      neomutt with apt-get when missing). TUI_BENCH_ARGS: --runs N, --presses N, --workdir.
.PHONY: bench
BENCH_ARGS ?=
TUI_BENCH_ARGS ?=
# store_growth: 10k → 150k stored messages (about 3 GB of disk, several minutes)
GROWTH_BENCH_ARGS ?= --sizes 11000,50000,150000

bench: $(STAMP)
	$(BIN)/python bench/server_throughput.py $(BENCH_ARGS)
	$(BIN)/python bench/store_growth.py $(GROWTH_BENCH_ARGS)
	$(BIN)/python bench/tui_bench.py $(TUI_BENCH_ARGS)

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
