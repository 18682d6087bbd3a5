#!/usr/bin/env bash
# Interrupting `berth up --provider vast` at many instants (kill -9, SIGINT, SIGTERM) while
# the replica answers the rental late: afterwards, once `berth ls` has run, no replica
# instance exists (nothing bills), no record is stuck mid-transition, and every name can be
# used again. Prints the figures.
source "$(dirname "$0")/lib.sh"
need_namespaces
export HOME=$T/home XDG_DATA_HOME=$T/data XDG_CONFIG_HOME=$T/config
mkdir -p "$HOME"
MACHINES=$T/machines
start_replica --boot-seconds 1 --credit 100 --machines "$MACHINES" --berth "$BERTH"
finish() {
  kill "$replica_pid" 2>/dev/null || true; wait "$replica_pid" 2>/dev/null || true
  for p in $(pgrep -f "agent boot --instance $MACHINES" || true); do kill "$p" 2>/dev/null || true; done
  cleanup
}
trap finish EXIT
# The rental is handled at once and answered 1.5 s late: the machine exists while berth waits.
faults '{"late_ms":1500,"match":"PUT /api/v0/asks/"}'

QUERY='gpu_name=RTX_4090 num_gpus=1 reliability>0.95'
signals=(KILL INT TERM)
# Instants from before the request to deep into the bootstrap (seconds).
instants=(0.05 0.3 0.6 0.9 1.2 1.5 1.8 2.1 2.4 2.8 3.2 3.6 4.0 4.5 5.0 5.5 6.0 7.0 8.0 9.0 10.0)
declare -A codes=()
n=0
for t in "${instants[@]}"; do
  n=$((n + 1))
  sig=${signals[$((n % 3))]}
  "$BERTH" up "k$n" --provider vast --query "$QUERY" > "$T/up$n.out" 2> "$T/up$n.err" & pid=$!
  sleep "$t"
  kill -s "$sig" "$pid" 2>/dev/null || true
  code=0; { wait "$pid"; } 2>/dev/null || code=$?
  codes[$code]=$(( ${codes[$code]:-0} + 1 ))
  if [ "$sig" != KILL ] && [ "$code" != 0 ] && [ "$code" != 130 ]; then
    die "SIGNAL $sig at ${t}s: exit $code, not 130: $(tail -3 "$T/up$n.err")"
  fi
  if [ "$sig" != KILL ] && [ "$code" = 130 ]; then
    expect_in "interrupted" "$(cat "$T/up$n.err")"
  fi
  # A finished up is a machine the user has: destroy it, as a user would.
  [ "$code" = 0 ] && "$BERTH" destroy -y --force "k$n" >/dev/null
done
echo "exit codes: $(for c in "${!codes[@]}"; do printf '%s x%s  ' "$c" "${codes[$c]}"; done)"
before=$(live_count)
"$BERTH" ls > "$T/ls.out" 2> "$T/ls.err" || die "ls failed: $(cat "$T/ls.err")"
after=$(live_count)
echo "replica instances after the kills: $before; after one \`berth ls\`: $after"
[ "$after" = 0 ] || die "$after instance(s) still exist (billing) after berth ls: $(api GET /api/v0/instances/)"
stuck=$("$BERTH" --json ls | python3 -c "
import json, sys
print(sum(1 for i in json.load(sys.stdin)['instances'] if i['status'] in ('creating','loading','destroying','stopping','starting')))")
echo "records stuck mid-transition: $stuck"
[ "$stuck" = 0 ] || die "records are stuck: $("$BERTH" ls)"
faults '{}'
# Every name is free again: the first and the last of them come up for real.
for name in k1 "k$n"; do
  "$BERTH" up "$name" --provider vast --query "$QUERY" > "$T/again.out" 2>&1 || die "'$name' cannot be reused: $(tail -3 "$T/again.out")"
  "$BERTH" destroy -y --force "$name" >/dev/null
done
left=$("$BERTH" --json ls | python3 -c "import json,sys; print(' '.join(i['name'] for i in json.load(sys.stdin)['instances']))")
[ -z "$left" ] || die "instances left in berth's records: $left"
[ "$(live_count)" = 0 ] || die "instances left at the end"
echo "vast_interrupt: $n interrupts, 0 instances billing after ls, 0 stuck records, names reusable"
