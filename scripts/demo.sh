#!/usr/bin/env bash
# The main job: build awq, then inspect and dequantize the small AutoAWQ checkpoint shipped in tests/data.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake --preset release >/dev/null
cmake --build --preset release -j"$(nproc)" --target awq
MODEL=tests/data/tiny-llama-awq
OUT=${OUT:-/tmp/awq-demo/tiny-llama-dense}
mkdir -p "$(dirname "$OUT")"
./build/release/awq inspect "$MODEL"
./build/release/awq inspect "$MODEL" --json | head -n 12
./build/release/awq dequantize "$MODEL" -o "$OUT" --force
ls -l "$OUT"
