# Two commands: `make run` starts everything, `make test` runs every test.
# Both create .venv and install the pinned set from pyproject.toml when needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: run test test-fast lint bench install clean

install: $(INSTALLED)

$(INSTALLED): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

run: $(INSTALLED)
	$(BIN)/ml-platform up

# Three workers on two cores: the end-to-end tests mostly wait on their servers (1.4 cores busy
# on average with two workers) while the rest runs beside them. Files keep the order conftest.py
# gives them (end-to-end first, then the slow ones): xdist's default puts one-test files last,
# and the 7-minute end-to-end test would start minutes late. The slowest 15 are listed.
# The lint and format check come first: they take a second and fail before a 15-minute run.
test: $(INSTALLED) lint
	@start=$$(date +%s); $(BIN)/python -m pytest -n 3 --dist loadfile --no-loadscope-reorder --durations=15; status=$$?; \
	echo "make test: tests took $$(( $$(date +%s) - start )) s"; exit $$status

# The unit tier: pure logic on the real reference files, no server (under a minute).
test-fast: $(INSTALLED) lint
	$(BIN)/python -m pytest -n 2 -m unit -q

lint: $(INSTALLED)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

# Scales 1 and 10 of the real year: the platform against a bare DuckDB script and pandas.
bench: $(INSTALLED)
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) .ml_platform
