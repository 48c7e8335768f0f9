# Two commands: `make run` starts everything, `make test` runs every test.
# Both create .venv and install the pinned set from pyproject.toml when needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: run test bench install clean

install: $(INSTALLED)

$(INSTALLED): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

run: $(INSTALLED)
	$(BIN)/ml-platform up

# Two workers: the end-to-end test mostly waits on its servers while the rest runs beside it.
test: $(INSTALLED)
	$(BIN)/python -m pytest -n 2 --dist loadfile

# Scales 1 and 10 of the real year: the platform against a bare DuckDB script and pandas.
bench: $(INSTALLED)
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) .ml_platform
