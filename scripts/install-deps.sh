#!/usr/bin/env bash
# Installs every system package awq needs to build, test, fuzz and benchmark (Debian 12).
# Idempotent: packages already present are skipped by apt-get.
set -euo pipefail
PKGS=(build-essential cmake ninja-build g++ clang libclang-rt-14-dev llvm
      libhwy-dev nlohmann-json3-dev libcli11-dev libfmt-dev libgtest-dev libgmock-dev
      libbenchmark-dev libopenblas-dev zlib1g-dev ccache libssl-dev
      libpcre2-dev libicu-dev libsentencepiece-dev
      python3-dev python3-numpy pybind11-dev python3-pytest python3-venv  # awqkit (python/) and its tests
      chromium)  # chromium: headless rendering of the HTML reports in tests
missing=()
for p in "${PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
