#!/usr/bin/env bash
# Wall time and peak memory of the README's main job (`reasoningrec demo`) from a cold start:
# a fresh work folder, no LLM response cache, no converted model (the GGUF -> safetensors conversion
# of the embedded SmolLM2 is part of a first run). Run from the repository root after `make setup`.
#   bash benchmarks/demo_wall.sh [extra demo args]
set -euo pipefail
ROOT=$(pwd)
RUN=$(mktemp -d /tmp/reasoningrec-demo.XXXXXX)
export REASONINGREC_MODEL_CACHE="$RUN/model-cache"
export REASONINGREC_DATA_DIR=${REASONINGREC_DATA_DIR:-$ROOT/../shared/data}
cp params.yaml "$RUN/"
cd "$RUN"
/usr/bin/time -v "$ROOT/.venv/bin/reasoningrec" demo "$@" 2>&1 | tee demo.log | grep -vE "^\s+(Page|Minor|Major|Swaps|File|Socket|Signals|Average|Exit|Voluntary|Involuntary|Percent)" | tail -40
echo "nproc: $(nproc); log: $RUN/demo.log"
