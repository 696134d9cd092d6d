# One command checks everything: `make test` (what .ci/run calls).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: test lint typecheck pytest demo bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# mysqlclient (MySQLdb) compiles against libmariadb: installed when pkg-config finds it (.ci/run installs
# libmariadb-dev), else its tests skip with the reason (and fail under REQUIRE_MYSQL=1).
MYSQLCLIENT := $(shell (pkg-config --exists libmariadb || pkg-config --exists mysqlclient) 2>/dev/null && echo ,mysqlclient)
# setup.py compiles reactor/_deferred.py with mypyc into reactor/_deferred.*.so (pure Python when it
# cannot): editing that module reinstalls, so the tests never run a stale build (which
# reactor/_implementation.py would in any case refuse, with a warning, for the .py). One pip run, so one build.
$(STAMP): pyproject.toml setup.py reactor/_deferred.py | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test,postgres,mysql,sqlalchemy$(MYSQLCLIENT)]'
	$(if $(MYSQLCLIENT),,@echo "note: no libmariadb-dev (pkg-config libmariadb): MySQLdb tests will skip")
	touch $(STAMP)

BENCH_STAMP := $(VENV)/.bench-stamp
$(BENCH_STAMP): pyproject.toml $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,postgres,mysql,sqlalchemy,bench$(MYSQLCLIENT)]'
	touch $(BENCH_STAMP)

lint: $(STAMP)
	$(BIN)/ruff check reactor deferthreads adbapi pytest_deferthreads.py tests examples benchmarks
	$(BIN)/mypy reactor deferthreads adbapi pytest_deferthreads.py

pytest: $(STAMP)
	$(BIN)/python -m pytest -q tests

test: lint pytest

# The tour, then the web backend until Ctrl-C (`make demo WEBAPP_ARGS=--serve-for=10` bounds it).
WEBAPP_ARGS ?=
demo: $(STAMP)
	$(BIN)/python examples/quickstart.py
	$(BIN)/python examples/webapp.py $(WEBAPP_ARGS)

# wrk is the load generator of the TechEmpower benchmark (bench_tfb.py skips without it).
bench: $(BENCH_STAMP)
	command -v wrk >/dev/null || apt-get install -y -q wrk || echo "note: could not install wrk: bench_tfb will skip"
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache build reactor/_deferred.*.so reactor/_deferred__mypyc.*.so
