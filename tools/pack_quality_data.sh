#!/usr/bin/env bash
# Copy the quality run's input data into .carry/data/ (git-ignored) for the device tool's `carry` list:
#   $REASONINGREC_DATA_DIR/reasoningrec-paper/{beauty,fashion} and $REASONINGREC_DATA_DIR/ml-100k
#
#   REASONINGREC_DATA_DIR=/path/to/data bash tools/pack_quality_data.sh
# On the device: export REASONINGREC_DATA_DIR=$PWD/.carry/data
set -euo pipefail
cd "$(dirname "$0")/.."
: "${REASONINGREC_DATA_DIR:?set REASONINGREC_DATA_DIR to the folder holding reasoningrec-paper/ and ml-100k/}"
DEST=.carry/data
git check-ignore -q "$DEST" || { echo "$DEST is not ignored by git: refusing to copy data into the repo" >&2; exit 1; }
for src in reasoningrec-paper/beauty reasoningrec-paper/fashion ml-100k; do
  [ -d "$REASONINGREC_DATA_DIR/$src" ] || { echo "missing $REASONINGREC_DATA_DIR/$src" >&2; exit 1; }
  mkdir -p "$DEST/$(dirname "$src")"
  rm -rf "${DEST:?}/$src"
  cp -R "$REASONINGREC_DATA_DIR/$src" "$DEST/$src"
done
du -sh "$DEST"
