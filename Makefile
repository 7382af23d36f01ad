VENV ?= .venv
PY := $(VENV)/bin/python
# The datasets: FEDUP_DATA_DIR if set, else ../shared/data beside the checkout
# when it exists; otherwise unset (simulations say how to set it).
SHARED_DATA := $(wildcard $(abspath ../shared/data))
ifneq ($(SHARED_DATA),)
export FEDUP_DATA_DIR ?= $(SHARED_DATA)
endif

.PHONY: install test lint bench bench-sim run clean deploy-demo reproduce detection readme-figures

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[simulation,dev]'
	touch $@

install: $(VENV)/.installed

test: install
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check fedup_flwr simulations tests bench scripts
	$(VENV)/bin/ruff format --check fedup_flwr simulations tests bench scripts
	$(VENV)/bin/mypy

bench: install
	$(PY) bench/bench_unlearning.py

bench-sim: install
	$(PY) bench/bench_sim.py

run: install
	$(PY) -m simulations.run +experiment=main

# The README's measured blocks from committed outputs; ARGS="--from <run
# folder>" first takes a fresh `make run`'s outputs into docs/figures/main_*.
readme-figures: install
	$(PY) -m simulations.readme_figures $(ARGS)

clean:
	rm -rf $(VENV) outputs multirun .pytest_cache .mypy_cache .ruff_cache

deploy-demo: install
	$(PY) -m simulations.deploy $(ARGS)

# The paper's tables: every run of the plan not done (missing, or stale: its
# recorded config differs from the plan; resumable), then
# docs/results.md rebuilt from results/.
reproduce: install
	$(PY) -m simulations.reproduce && $(PY) -m simulations.report

# Detector quality measurements (resumable, with a time budget in minutes).
detection: install
	$(PY) -m simulations.detection measure 60 && $(PY) -m simulations.detection report
