#!/usr/bin/env bash
# Wall time and peak memory of the README's main job (`reasoningrec run`, what `make demo` runs) from
# a cold start: a fresh work folder (work, metrics, models, MLflow store), no LLM response cache, no
# converted model (the GGUF -> safetensors conversion of the embedded SmolLM2 is part of a first run).
# Run from the repository root after `make setup`:
#   bash benchmarks/demo_wall.sh [extra `reasoningrec run` args, e.g. --through data]
# REASONINGREC_BIN picks another reasoningrec executable (default: the checkout's .venv).
set -euo pipefail
ROOT=$(pwd)
BIN=${REASONINGREC_BIN:-$ROOT/.venv/bin/reasoningrec}
RUN=$(mktemp -d /tmp/reasoningrec-run.XXXXXX)
export REASONINGREC_MODEL_CACHE="$RUN/model-cache"
export REASONINGREC_DATA_DIR=${REASONINGREC_DATA_DIR:-$ROOT/../shared/data}
export REASONINGREC_PARAMS="$RUN/params.yaml"
export REASONINGREC_METRICS_DIR="$RUN/metrics"
cp params.yaml "$RUN/"
cd "$RUN"
/usr/bin/time -v "$BIN" run "$@" 2>&1 | tee run.log | grep -vE "^\s+(Page|Minor|Major|Swaps|File|Socket|Signals|Average|Exit|Voluntary|Involuntary|Percent)" | tail -40
echo "nproc: $(nproc); log: $RUN/run.log"
