#!/usr/bin/env bash
# Peak anonymous memory (RssAnon) of `awq dequantize` on a synthetic Llama-2-7B-shaped AutoAWQ
# GEMM checkpoint. Multi-GB: never run in CI. Usage: tools/measure_dequant_memory.sh [WORKDIR]
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-/tmp/awq-mem}
mkdir -p "$WORK"
cmake --build --preset release --target awq awq_synth >/dev/null
[ -f "$WORK/llama2-7b-awq/model.safetensors" ] || ./build/release/awq_synth "$WORK/llama2-7b-awq"
rm -rf "$WORK/dense"
start=$(date +%s.%N)
./build/release/awq dequantize "$WORK/llama2-7b-awq" -o "$WORK/dense" -q &
pid=$!
peak=0
while kill -0 $pid 2>/dev/null; do
  a=$(awk '/^RssAnon:/ {print $2}' /proc/$pid/status 2>/dev/null || echo 0)
  [ -n "$a" ] && [ "$a" -gt "$peak" ] && peak=$a
  sleep 0.05
done
wait $pid
end=$(date +%s.%N)
echo "peak RssAnon: $((peak / 1024)) MiB; wall: $(echo "$end - $start" | bc) s; output: $(du -sh "$WORK/dense" | cut -f1)"
