#!/usr/bin/env bash
# Builds awq (Release) and runs the whole test suite. Installs system packages first if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake --preset release >/dev/null
cmake --build --preset release -j"$(nproc)"
ctest --preset release -j"$(nproc)"
