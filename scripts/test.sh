#!/usr/bin/env bash
# Installs, builds and runs every test: unit tests and the end-to-end suites (real sshd,
# real mount namespaces). End-to-end suites need root (or user namespaces) and skip otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh "$@"
ctest --test-dir build --output-on-failure --timeout 900 -j 2
