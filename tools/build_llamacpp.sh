#!/usr/bin/env bash
# Builds the llama.cpp that the speed comparison of issue 16 measures against: the copy vendored by
# the source package of llama-cpp-python==0.3.36, built with GGML_NATIVE=ON, into
# vendor/llama.cpp/build/bin (vendor/ is git-ignored; never commit it).
#
# Usage: tools/build_llamacpp.sh [-jN]        (default -j2; run it under `nice -n 19` on a shared box)
# Needs: a pip (PIP=..., default /work/venv/bin/pip, else `python3 -m pip`), cmake, a C++ compiler,
# network access for the one download. Idempotent: each step is skipped when its result exists.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VERSION=0.3.36
JOBS=${1:--j2}
DEST=$ROOT/vendor/llama.cpp
BUILD=$DEST/build
STAMP=$DEST/.awq-vendored-from
if [ -z "${PIP:-}" ]; then
  if [ -x /work/venv/bin/pip ]; then PIP=/work/venv/bin/pip; else PIP="python3 -m pip"; fi
fi

# 1. Fetch and unpack the sdist, copy its vendored llama.cpp.
if [ ! -f "$STAMP" ] || ! grep -qx "llama-cpp-python==$VERSION" "$STAMP"; then
  TMP=$(mktemp -d)
  trap 'rm -rf "$TMP"' EXIT
  echo "== downloading llama-cpp-python==$VERSION (source)"
  $PIP download --no-binary :all: --no-deps "llama-cpp-python==$VERSION" -d "$TMP" >/dev/null
  SDIST=$(ls "$TMP"/llama_cpp_python-*.tar.gz)
  tar -xzf "$SDIST" -C "$TMP"
  SRC=$(ls -d "$TMP"/llama_cpp_python-*/vendor/llama.cpp)
  [ -f "$SRC/CMakeLists.txt" ] || { echo "no vendor/llama.cpp/CMakeLists.txt in $SDIST" >&2; exit 1; }
  rm -rf "$DEST"
  mkdir -p "$ROOT/vendor"
  cp -a "$SRC" "$DEST"
  rm -f "$DEST/.git"   # a submodule pointer to a repository that is not there
  echo "llama-cpp-python==$VERSION" >"$STAMP"
  echo "sha256 $(sha256sum "$SDIST" | cut -d' ' -f1)  $(basename "$SDIST")" >>"$STAMP"
  # The sdist carries no git metadata; its changelog names the llama.cpp commit it vendors.
  awk -v v="## [$VERSION]" '$0 == v {f = 1; next} f && /^## / {exit} f && /update llama.cpp to/' \
    "$(dirname "$(dirname "$SRC")")/CHANGELOG.md" | sed 's/^- //' >>"$STAMP"
fi

# 2. Configure (every time: cheap, and a no-op when nothing changed). GIT_CEILING_DIRECTORIES stops
# llama.cpp's build-info from finding *our* repository above vendor/ and stamping awq's commit as
# llama.cpp's; its build_commit reads "unknown", and the stamp file names the real one.
# AMX: on a CPU with amx_int8, -march=native turns on ggml's AMX backend, and in this llama.cpp it
# segfaults in ggml_backend_amx_mul_mat (ldtilecfg) on the first matmul, here on a Xeon with AMX
# (upstream: ggml-org/llama.cpp issue 20824, PR 26954). So by default the build is GGML_NATIVE=ON less
# AMX (-mno-amx-*; GCC keeps an explicit -mno-X over what -march=native implies); LLAMACPP_AMX=1 keeps
# it. The choice is written to the stamp file and is part of what the benchmark states.
export GIT_CEILING_DIRECTORIES=$ROOT/vendor
EXTRA_FLAGS=""
if grep -qw amx_int8 /proc/cpuinfo && [ "${LLAMACPP_AMX:-0}" != 1 ]; then
  EXTRA_FLAGS="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
fi
sed -i '/^build flags:/d' "$STAMP"
echo "build flags: GGML_NATIVE=ON ${EXTRA_FLAGS:-(nothing removed)}" >>"$STAMP"
echo "== configuring $BUILD (GGML_NATIVE=ON ${EXTRA_FLAGS})"
cmake -S "$DEST" -B "$BUILD" -DGGML_NATIVE=ON -DLLAMA_CURL=OFF -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_C_FLAGS="$EXTRA_FLAGS" -DCMAKE_CXX_FLAGS="$EXTRA_FLAGS" \
  -DLLAMA_BUILD_TESTS=ON -DLLAMA_BUILD_EXAMPLES=ON -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_SERVER=OFF >/dev/null

# 3. Build the targets that exist in this version (make/ninja skip what is up to date).
# (llama-cli needs LLAMA_BUILD_SERVER in this version; llama-completion and llama-simple stand in.)
HELP=$(cmake --build "$BUILD" --target help)
TARGETS=()
for t in llama-bench llama-cli llama-completion llama-simple llama-tokenize llama-perplexity llama-quantize \
         test-backend-ops; do
  if grep -Eq "(^|[ :.])$t(:| |\$)" <<<"$HELP"; then TARGETS+=("$t"); else echo "(no target $t in this llama.cpp)"; fi
done
[ ${#TARGETS[@]} -gt 0 ] || { echo "no known target in $BUILD" >&2; exit 1; }
echo "== building ${TARGETS[*]}"
cmake --build "$BUILD" "$JOBS" --target llama-bench   # first: the one the comparison needs
cmake --build "$BUILD" "$JOBS" --target "${TARGETS[@]}"

# 4. Say what was built.
for t in "${TARGETS[@]}"; do [ -x "$BUILD/bin/$t" ] || { echo "missing $BUILD/bin/$t" >&2; exit 1; }; done
cat "$STAMP"
"$BUILD/bin/llama-bench" --version 2>&1 | head -2 || true
echo "built in $BUILD/bin: ${TARGETS[*]}"
