#!/usr/bin/env bash
# GPU check: train the paper preset on Tiny Shakespeare on the tensorflow
# backend, requiring a real GPU device, for a fixed number of iterations, and
# print its training throughput and losses. Installs nothing: when
# @tensorflow/tfjs-node-gpu is not importable it prints how to install it and
# exits 2.
#
# Usage: scripts/gpu-check.sh [ITERS]   (default 200)
#   QLR_DATA_DIR  directory holding shakespeare_char/input.txt (default ../shared/data)
# Exit: 0 ran on a GPU; 2 tfjs-node-gpu missing; other: the run failed (e.g. no GPU device).
set -euo pipefail
cd "$(dirname "$0")/.."

iters="${1:-200}"
data_dir="${QLR_DATA_DIR:-../shared/data}"
tfjs_version="$(node -p 'require("@tensorflow/tfjs/package.json").version')"

if ! node --input-type=module -e 'await import("@tensorflow/tfjs-node-gpu")' >/dev/null 2>&1; then
  cat >&2 <<MSG
gpu-check: @tensorflow/tfjs-node-gpu is not importable here.
Install it next to qlr (its install script downloads libtensorflow 2.9.1 with
GPU support; it needs an NVIDIA driver, CUDA 11.2 and cuDNN 8.1 on the library path):
    npm install --no-save @tensorflow/tfjs-node-gpu@${tfjs_version}
then run this script again.
MSG
  exit 2
fi

# bin/qlr.js runs the compiled dist/.
[ -f dist/programs/main.js ] || npm run build >/dev/null

out="$(mktemp -d "${TMPDIR:-/tmp}/qlr-gpu-check.XXXXXX")"
echo "gpu-check: ${iters} iterations of the paper preset (6/6/384, block 256, batch 64) -> ${out}" >&2
# Evaluate only at the start and the end, on 10 batches per split, so that the
# reported throughput is mostly training.
node bin/qlr.js run --preset paper --dataset shakespeare_char --data-dir "$data_dir" \
  --backend tensorflow --require-gpu --policy cosine \
  --max-iters "$iters" --eval-interval "$iters" --eval-iters 10 \
  --sample-count 1 --sample-tokens 50 --quiet --out "$out"

node --input-type=module - "$out" <<'JS'
import { readFileSync } from "node:fs"
import { join } from "node:path"
const dir = process.argv[2]
const config = JSON.parse(readFileSync(join(dir, "config.json"), "utf8"))
const final = JSON.parse(readFileSync(join(dir, "final_info.json"), "utf8"))
const evals = readFileSync(join(dir, "events.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l)).filter((e) => e.type === "eval")
const last = evals.at(-1)
console.log(JSON.stringify({
  backend: config.run.backend,
  gpu: config.run.gpu,
  description: config.run.backend_description,
  iterations: last.iter,
  batch_tokens: config.batch_size * config.block_size,
  // Training tokens/s between the first and the last evaluation (the last one included).
  train_tokens_per_s: last.tokens_per_second,
  first_val_loss: evals[0].val_loss,
  final_train_loss: final.final_train_loss,
  final_val_loss: last.val_loss,
  total_train_time_s: final.total_train_time,
  inference_tokens_per_s: final.avg_inference_tokens_per_second,
  run_dir: dir
}, null, 2))
JS
