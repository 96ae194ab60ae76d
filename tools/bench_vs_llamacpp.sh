#!/usr/bin/env bash
# Side-by-side speed of llama.cpp and awq on the same 7B-shaped model (issue 16, "Speed"): prefill of
# 512 tokens and decode of 128, at 1 and 2 threads, each measured by its own tool in one run on one
# machine, with the ratio awq / llama.cpp against the goals (decode >= 1.1x at 1 thread, >= 1.0x at 2,
# prefill >= 2x). For each thread count it runs llama-bench then `awq bench run`, so a drift in the
# machine's speed touches both.
#
# Usage: tools/bench_vs_llamacpp.sh [--force] [--llama-only] [--reps N] [--threads 1,2]
#          [--prompt-tokens 512] [--gen-tokens 128] [--gguf FILE] [--awq DIR] [--out DIR]
# Prerequisites (none is made here; each is a few minutes and several GB):
#   tools/build_llamacpp.sh                                 -> vendor/llama.cpp/build/bin/llama-bench
#   /work/venv/bin/python tools/make_llama7b_gguf.py -o /work/big/llama7b-q4k.gguf
#   cmake --build --preset release --target awq awq_synth && build/release/awq_synth /work/big/llama7b-awq
# It refuses to run while the machine is busy (1-minute load average > 0.5): numbers taken beside other
# work are noise. --force measures anyway (the summary then says so). Do not run it under `nice`.
# Output: DIR (default /work/big/bench-<UTC time>) holds cpu.txt, llama-bench-tN.{json,md},
# awq-prefill-tN.json, awq-decode-tN.json and summary.md; summary.md is also printed.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

FORCE=0 LLAMA_ONLY=0 REPS=3 THREADS=1,2 PROMPT=512 GEN=128
GGUF=/work/big/llama7b-q4k.gguf
AWQ_MODEL=/work/big/llama7b-awq
OUT=/work/big/bench-$(date -u +%Y%m%dT%H%M%SZ)
LLAMA_BENCH=${LLAMA_BENCH:-$ROOT/vendor/llama.cpp/build/bin/llama-bench}
AWQ_BIN=${AWQ_BIN:-$ROOT/build/release/awq}
MAX_LOAD=${MAX_LOAD:-0.5}

die() { echo "bench_vs_llamacpp: $*" >&2; exit 1; }
while [ $# -gt 0 ]; do
  case "$1" in
    --force) FORCE=1 ;;
    --llama-only) LLAMA_ONLY=1 ;;
    --reps) REPS=$2; shift ;;
    --threads) THREADS=$2; shift ;;
    --prompt-tokens) PROMPT=$2; shift ;;
    --gen-tokens) GEN=$2; shift ;;
    --gguf) GGUF=$2; shift ;;
    --awq) AWQ_MODEL=$2; shift ;;
    --out) OUT=$2; shift ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
  shift
done
[[ $REPS =~ ^[1-9][0-9]*$ ]] || die "--reps must be a positive integer, got '$REPS'"
[[ $PROMPT =~ ^[1-9][0-9]*$ && $GEN =~ ^[1-9][0-9]*$ ]] || die "--prompt-tokens and --gen-tokens must be positive integers"
[[ $THREADS =~ ^[1-9][0-9]*(,[1-9][0-9]*)*$ ]] || die "--threads must be like 1,2, got '$THREADS'"

# Prerequisites, each with the command that makes it.
[ -x "$LLAMA_BENCH" ] || die "no $LLAMA_BENCH: run tools/build_llamacpp.sh"
[ -f "$GGUF" ] || die "no $GGUF: run /work/venv/bin/python tools/make_llama7b_gguf.py -o $GGUF"
if [ $LLAMA_ONLY = 0 ]; then
  [ -x "$AWQ_BIN" ] || die "no $AWQ_BIN: run cmake --preset release && cmake --build --preset release"
  [ -f "$AWQ_MODEL/model.safetensors" ] || die "no $AWQ_MODEL/model.safetensors: run build/release/awq_synth $AWQ_MODEL"
  "$AWQ_BIN" bench run --help >/dev/null 2>&1 || die "$AWQ_BIN has no 'bench run' subcommand (issue 16's runtime); --llama-only measures llama.cpp alone"
fi

# A quiet machine, or --force.
BUSY=""
read -r LOAD1 _ </proc/loadavg
if awk -v l="$LOAD1" -v m="$MAX_LOAD" 'BEGIN { exit !(l > m) }'; then
  BUSY="load average $LOAD1 > $MAX_LOAD"
  if [ $FORCE = 0 ]; then
    echo "bench_vs_llamacpp: the machine is busy ($BUSY); the busiest processes:" >&2
    ps -eo pid,pcpu,etime,comm --sort=-pcpu | head -6 >&2
    die "wait until it is idle, or pass --force (the numbers will be marked as taken on a busy machine)"
  fi
fi

mkdir -p "$OUT"
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "host: $(hostname)"
  lscpu | grep -E '^(Model name|Architecture|CPU\(s\)|Thread\(s\) per core|Core\(s\) per socket|L2 cache|L3 cache|Hypervisor vendor):' | sed 's/  */ /g'
  echo "flags: $(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -E '^(avx2|fma|f16c|avx512.*|avx_vnni|amx.*)$' | sort | tr '\n' ' ')"
  echo "memory: $(free -g | awk '/^Mem:/ {print $2 " GiB"}')"
  echo "kernel: $(uname -r)"
  echo "load average at start: $(cat /proc/loadavg)"
  echo "llama.cpp: $(paste -sd";" "$ROOT/vendor/llama.cpp/.awq-vendored-from" 2>/dev/null || echo unknown); $("$LLAMA_BENCH" --version 2>&1 | head -1)"
  echo "awq: $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown) ($(git -C "$ROOT" rev-parse --abbrev-ref HEAD 2>/dev/null || echo ?))"
  echo "gguf: $GGUF ($(du -h "$GGUF" | cut -f1))"
  [ $LLAMA_ONLY = 1 ] || echo "awq model: $AWQ_MODEL ($(du -sh "$AWQ_MODEL" | cut -f1))"
  [ -z "$BUSY" ] || echo "WARNING: measured with --force on a busy machine ($BUSY)"
} >"$OUT/cpu.txt"
cat "$OUT/cpu.txt"
echo

for t in ${THREADS//,/ }; do
  echo "== llama-bench, $t thread(s)"
  "$LLAMA_BENCH" -m "$GGUF" -p "$PROMPT" -n "$GEN" -t "$t" -r "$REPS" -o json -oe md \
    >"$OUT/llama-bench-t$t.json" 2>"$OUT/llama-bench-t$t.md" || { cat "$OUT/llama-bench-t$t.md" >&2; die "llama-bench failed"; }
  cat "$OUT/llama-bench-t$t.md"
  if [ $LLAMA_ONLY = 0 ]; then
    # Two runs, as llama-bench measures: prefill of PROMPT tokens (no decode), and decode of GEN tokens from an
    # empty context (one prompt token), so that neither side decodes over a longer KV cache than the other.
    echo "== awq bench run, $t thread(s): prefill"
    "$AWQ_BIN" bench run "$AWQ_MODEL" --prompt-tokens "$PROMPT" --gen-tokens 0 --threads "$t" --json \
      >"$OUT/awq-prefill-t$t.json" || die "awq bench run (prefill) failed"
    echo "== awq bench run, $t thread(s): decode"
    "$AWQ_BIN" bench run "$AWQ_MODEL" --prompt-tokens 1 --gen-tokens "$GEN" --threads "$t" --json \
      >"$OUT/awq-decode-t$t.json" || die "awq bench run (decode) failed"
  fi
done

# The table: one row per (threads, test), the ratio awq / llama.cpp and the goal it is held to.
python3 - "$OUT" "$THREADS" "$PROMPT" "$GEN" "$LLAMA_ONLY" >"$OUT/summary.md" <<'EOF'
import json, os, statistics, sys
out, threads, prompt, gen, llama_only = sys.argv[1], sys.argv[2].split(","), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5] == "1"
goal = {("decode", "1"): 1.1, ("decode", "2"): 1.0}
rows = []
for t in threads:
    lb = json.load(open(os.path.join(out, f"llama-bench-t{t}.json")))
    for test, key, pick, want in (("prefill", "prefill_tps", lambda r: r["n_prompt"] == prompt and r["n_gen"] == 0, (prompt, 0)),
                                  ("decode", "decode_tps", lambda r: r["n_gen"] == gen and r["n_prompt"] == 0, (1, gen))):
        ours = [] if llama_only else json.load(open(os.path.join(out, f"awq-{test}-t{t}.json")))
        lr = [r for r in lb if pick(r) and str(r["n_threads"]) == t]
        if len(lr) != 1:
            sys.exit(f"llama-bench-t{t}.json: expected one {test} row, found {len(lr)}")
        lr = lr[0]
        samples = lr.get("samples_ts") or [lr["avg_ts"]]
        spread = f"{min(samples):.2f}-{max(samples):.2f}"
        ar = [r for r in ours if str(r["threads"]) == t]
        if not llama_only and len(ar) != 1:
            sys.exit(f"awq-{test}-t{t}.json: expected one row for {t} threads, found {len(ar)}")
        if ar and (ar[0]["prompt_tokens"], ar[0]["gen_tokens"]) != want:
            sys.exit(f"awq-{test}-t{t}.json: measured {ar[0]['prompt_tokens']}/{ar[0]['gen_tokens']} tokens, asked {want}")
        a = ar[0][key] if ar else None
        g = goal.get((test, t), 2.0 if test == "prefill" else None)
        ratio = a / lr["avg_ts"] if a else None
        verdict = "" if ratio is None or g is None else ("met" if ratio >= g else "NOT met")
        rows.append((t, f"{test} ({prompt if test == 'prefill' else gen} tok)", f"{lr['avg_ts']:.2f}", spread,
                     "-" if a is None else f"{a:.2f}", "-" if ratio is None else f"{ratio:.2f}x",
                     "-" if g is None else f">= {g:.1f}x", verdict))
print(open(os.path.join(out, "cpu.txt")).read())
print("| threads | test | llama.cpp t/s (mean) | llama.cpp samples | awq t/s | awq / llama.cpp | goal | |")
print("|---|---|---|---|---|---|---|---|")
for r in rows:
    print("| " + " | ".join(r) + " |")
EOF
cat "$OUT/summary.md"
echo "results in $OUT"
