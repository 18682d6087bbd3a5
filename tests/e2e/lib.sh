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
expect_not_in() { ! grep -qF -- "$1" <<<"$2" || die "did not expect '$1' in: $2"; }

# start_replica [ARGS...]: starts berth-vast-replica on the recorded offers (key KEY-e2e) with
# extra ARGS, waits for it, and exports VAST_URL and VAST_API_KEY. Sets replica_pid.
# Helpers after it: api METHOD PATH [BODY], faults JSON, live_count.
start_replica() {
  : "${BERTH_VAST_REPLICA:?set BERTH_VAST_REPLICA}"
  local data=${BERTH_SHARED:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)/shared}/vastai/data
  [ -f "$data/offers_snapshot_2024-11-05.json" ] || die "the recorded Vast.ai data is missing at $data (set BERTH_SHARED)"
  "$BERTH_VAST_REPLICA" --offers "$data/offers_snapshot_2024-11-05.json" --api-key KEY-e2e "$@" \
    > "$T/replica.out" 2>&1 & replica_pid=$!
  local i
  for i in $(seq 1 200); do grep -q "listening on" "$T/replica.out" && break; sleep 0.05; done
  local port
  port=$(sed -n 's/listening on 127.0.0.1:\([0-9]*\)/\1/p' "$T/replica.out")
  [ -n "$port" ] || die "the replica did not start: $(cat "$T/replica.out")"
  export VAST_URL=http://127.0.0.1:$port VAST_API_KEY=KEY-e2e
}
api() { # METHOD PATH [BODY]: the replica's JSON answer
  curl -sS -X "$1" -H "Authorization: Bearer KEY-e2e" -H "Content-Type: application/json" \
    ${3:+--data "$3"} "$VAST_URL$2"
}
faults() { curl -sS -X POST --data "$1" "$VAST_URL/_replica/faults" >/dev/null; }
live_count() { api GET /api/v0/instances/ | python3 -c "import json,sys; print(len(json.load(sys.stdin)['instances']))"; }
