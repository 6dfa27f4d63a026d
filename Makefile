# Two commands from a fresh clone (see README): `make sweep` (the main job) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install test sweep referee lint bench lock

$(VENV)/.r2d-installed: pyproject.toml scripts/install.sh locks/cpu.txt
	bash scripts/install.sh

install: $(VENV)/.r2d-installed

test: install
	$(PY) -m pytest -q -n 2 --dist loadfile --durations=15

sweep: install
	$(PY) sweeps/schedule_sensitivity.py

referee: install
	$(PY) sweeps/referee.py

lint: install
	$(VENV)/bin/ruff check r2d analysis sweeps bench tests

bench: install
	$(PY) bench/bench_train.py
	$(PY) bench/bench_analysis.py

# Refresh locks/cpu.txt from a fresh .[dev] install (see README, Reproducibility).
lock: install
	$(PY) scripts/lock.py --cuda
