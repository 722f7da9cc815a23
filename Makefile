# Two commands for a new user: `make run` opens the lab, `make test` runs the whole suite.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test bench clean compile

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	# torch first, pinned to the CPU build that installs in seconds; the project's range then finds it.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test]'
	# MinAtar's games need only numpy; its metadata would pull matplotlib, pandas, scipy, seaborn (~429 MB).
	$(PY) -m pip install -q --no-deps minatar==1.0.15
	@touch $(STAMP)

# Byte-compile the package: where PYTHONDONTWRITEBYTECODE is set, every process (each run's worker)
# would otherwise compile rltui from source at start-up (~0.05-0.1 s of CPU each). Only stale files are redone.
compile: $(STAMP)
	@$(PY) -m compileall -q rltui >/dev/null

run: compile
	$(VENV)/bin/rltui

test: compile
	@bash scripts/system-packages.sh
	$(PY) -m pytest -q -n 2 --dist loadgroup

bench: $(STAMP)
	@for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info
