#!/usr/bin/env bash
# Copy a finished sweep into the repository: the report, its figures, the
# aggregates and each run's small files (config, events, final_info, sweep
# record). Weights and checkpoints stay behind: they are large and rebuilt by
# rerunning the sweep.
# Usage: scripts/publish-results.sh SWEEP_DIR DEST_DIR
set -euo pipefail
src=$1
dest=$2
mkdir -p "$dest"
cp -r "$src"/. "$dest"/
find "$dest" \( -name model.bin -o -name checkpoint.bin -o -name '*.tmp' \) -delete
echo "published $src -> $dest ($(du -sh "$dest" | cut -f1))"
