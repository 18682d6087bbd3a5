# Shared by the end-to-end suites: strict mode, a trap that names the failing line, helpers.
# Each suite is a standalone bash script run by CTest; exit 77 means "skipped" (CTest SKIP).
set -euo pipefail
trap 'echo "FAILED: ${BASH_SOURCE[0]:-$0}:${LINENO}: $BASH_COMMAND" >&2' ERR

: "${BERTH:?set BERTH to the berth binary}"
: "${BERTH_STATIC_BINARY:?set BERTH_STATIC_BINARY to the berth-static binary}"
export BERTH BERTH_STATIC_BINARY NO_COLOR=1
unset BERTH_STORE BERTH_CONFIG SSH_AUTH_SOCK || true

skip() { echo "SKIP: $*"; exit 77; }
die() { echo "FAILED: $*" >&2; exit 1; }

# Tests that build ephemeral machines need mount namespaces.
need_namespaces() {
  if [ "$(id -u)" -eq 0 ]; then
    unshare -m true 2>/dev/null || skip "unshare -m does not work here"
  else
    skip "needs root for mount namespaces"
  fi
}

# A scratch directory removed at exit.
T=${BERTH_E2E_DIR:-$(mktemp -d /tmp/berth-e2e-XXXXXX)}
cleanup_dirs=("$T")
cleanup() { local d; for d in "${cleanup_dirs[@]}"; do rm -rf "$d" 2>/dev/null || true; done; }
trap cleanup EXIT

# One hash for a whole tree: file contents, symlink targets, and modes.
tree_hash() {
  (cd "$1" && {
    find . -type f -print0 | sort -z | xargs -0 -r sha256sum
    find . -type l -printf '%p -> %l\n' | sort
    find . \( -type f -o -type d \) -printf '%p %m\n' | sort
  } | sha256sum | cut -d' ' -f1)
}

# expect_exit CODE CMD...: runs CMD, fails unless it exits with CODE; output in $out.
expect_exit() {
  local want=$1; shift
  local got=0
  out=$("$@" 2>&1) || got=$?
  [ "$got" -eq "$want" ] || die "expected exit $want, got $got from: $* -- output: $out"
}

expect_in() { grep -qF -- "$1" <<<"$2" || die "expected '$1' in: $2"; }
