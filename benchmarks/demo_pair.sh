#!/usr/bin/env bash
# The README's main job timed in turn with an older commit's, A B A B ..., each from a cold start (a
# fresh folder: work data, model cache, MLflow store), so a comparison holds when the machine's speed
# drifts between days. A = BASE_COMMIT's main job run from a git worktree through this checkout's
# .venv (PYTHONPATH puts its package first), B = this checkout's `reasoningrec run`.
#   bash benchmarks/demo_pair.sh BASE_COMMIT BASE_SUBCOMMAND [PAIRS]
#   bash benchmarks/demo_pair.sh d4d964f demo 2   # the code the issue's 6 min 18 s was measured on
# Prints one line per run (wall, user, sys seconds, peak RSS) and the test AUC each printed.
set -euo pipefail
ROOT=$(pwd)
BASE_COMMIT=$1
BASE_SUBCOMMAND=$2
PAIRS=${3:-2}
PY=$ROOT/.venv/bin/python
BASE=$(mktemp -d /tmp/reasoningrec-base.XXXXXX)
git -C "$ROOT" worktree add --detach "$BASE" "$BASE_COMMIT" >/dev/null
trap 'git -C "$ROOT" worktree remove --force "$BASE"' EXIT
one() {  # name, code root, subcommand
  local run
  run=$(mktemp -d "/tmp/pair-$1.XXXXXX")
  cp "$2/params.yaml" "$run/"
  (
    cd "$run"
    export REASONINGREC_MODEL_CACHE="$run/model-cache" REASONINGREC_PARAMS="$run/params.yaml"
    export REASONINGREC_DATA_DIR=${REASONINGREC_DATA_DIR:-$ROOT/../shared/data}
    export REASONINGREC_METRICS_DIR="$run/metrics" PYTHONPATH="$2"
    /usr/bin/time -f "$1 wall %e user %U sys %S maxrss_kb %M" "$PY" -m reasoningrec "$3" >run.log 2>&1
    echo "$(tail -1 run.log) $(grep -oE 'test AUC +[0-9.]+' run.log | tail -1) log $run/run.log"
  )
}
for _ in $(seq "$PAIRS"); do
  one base "$BASE" "$BASE_SUBCOMMAND"
  one new "$ROOT" run
done
echo "nproc: $(nproc); base $(git -C "$ROOT" rev-parse --short "$BASE_COMMIT"), new $(git -C "$ROOT" rev-parse --short HEAD)"
