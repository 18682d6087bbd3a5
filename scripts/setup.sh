#!/usr/bin/env bash
# Installs everything berth needs on Debian 12 (Debian packages only), then configures and
# builds it into ./build. Safe to rerun. Usage: bash scripts/setup.sh [--no-install]
set -euo pipefail
cd "$(dirname "$0")/.."

# Each package, and why:
packages=(
  g++ cmake make pkg-config        # the toolchain (C++20 with g++ 12)
  libcli11-dev                     # command-line parsing
  libtomlplusplus-dev              # the config file (TOML)
  nlohmann-json3-dev               # --json output, the store manifest
  libexpected-dev                  # tl::expected for expected failures
  libfmt-dev                       # formatting (header-only)
  libsqlite3-dev                   # the state database (instances, intents)
  libcurl4-openssl-dev             # provider APIs (Vast.ai) over HTTPS
  libsimdjson-dev                  # parsing 10,000-offer answers (23 MB of JSON) fast
  libcpp-httplib-dev               # the Vast.ai replica server (tests, trying berth without an account)
  libzstd-dev                      # snapshots: zstd (also its static archive for berth-static)
  libssl-dev                       # SHA-256 (libcrypto, also its static archive for berth-static)
  libgtest-dev                     # unit tests
  libbenchmark-dev                 # bench/
  openssh-client openssh-server    # ssh, ssh-keygen; sshd for the key tests
  python3 python3-pip              # the ephemeral-machine test installs a wheel with pip --user
  jupyter-notebook python3-ipykernel   # Jupyter inside local machines (the host's install)
  python3-websocket                # tests: a kernel runs 1+1 over Jupyter's websocket API
  chromium                         # tests: a real browser loads Jupyter through the tunnel
  git util-linux coreutils         # unshare (mount namespaces) for the end-to-end tests
  procps curl file                 # tests: pgrep, requests to the replica, ELF checks
  hyperfine bc                     # bench/: times whole commands
  python3-numpy restic borgbackup rsync zstd   # bench/save.sh: the workspace generator and the peers
                                   # rsync also: the replica's `copy` to and from instances
  python3-requests python3-urllib3 python3-dateutil python3-rich python3-argcomplete
                                   # tests: Vast.ai's official client against the replica
                                   # (e2e_vast_cli, when VAST_CLI_SRC names its source tree)
  rclone                           # tests: an independent S3 client reads the bucket berth wrote
  sudo                             # the Paperspace replica's VMs: passwordless sudo for `paperspace`, as its images have
  slurm-wlm munge                  # tests: a real Slurm cluster (slurmctld, slurmd, munged) for --provider slurm
)
# From the npm registry (with the machine's Node.js), into build/npm:
#   s3rver 3.7.1   tests and bench/repo_s3.sh: an S3-compatible server (e2e_repo_s3)
npm_packages=(s3rver@3.7.1)

if [ "${1:-}" != "--no-install" ]; then
  missing=()
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "setup: installing ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi

if [ "${1:-}" != "--no-install" ] && command -v npm >/dev/null; then
  [ -x build/npm/node_modules/.bin/s3rver ] ||
    npm install --silent --no-audit --no-fund --prefix build/npm "${npm_packages[@]}" >/dev/null
fi

cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)"
echo "setup: built build/berth and build/berth-static"
