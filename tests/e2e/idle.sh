#!/usr/bin/env bash
# Idle stop end to end on PROVIDER (local, or vast against the replica), six machines with
# --idle 1m side by side, and no berth client alive while the machines decide:
#   a  untouched, with an open `berth jupyter` tunnel and no browser: stops within idle + 2 min
#   b  a kernel running time.sleep in a loop: up well past idle; stops after the cell ends
#   c  an interactive SSH session with input every 30 s: up; then, input stopped and the
#      session left open, it is warned on that terminal and stops
#   d  Jupyter frozen (SIGSTOP): shown as unreadable, counts as busy; stops once it answers
#   e  `berth hold`: up; stops after `berth hold --release`
#   f  `berth idle f off`: up; stops after `berth idle f 1m`
# Usage: idle.sh local|vast
source "$(dirname "$0")/lib.sh"
need_namespaces
PROVIDER=${1:?usage: idle.sh local|vast}
command -v jupyter-notebook >/dev/null || skip "jupyter-notebook missing"
PY=/usr/bin/python3; [ -x "$PY" ] || PY=python3
"$PY" -c "import websocket" 2>/dev/null || skip "python3-websocket missing"
command -v pkill >/dev/null || skip "pkill missing (procps)"

export HOME=$T/home XDG_DATA_HOME=$T/data XDG_CONFIG_HOME=$T/config
mkdir -p "$HOME"
UP=()
if [ "$PROVIDER" = vast ]; then
  start_replica --boot-seconds 1 --credit 100 --machines "$T/machines" --berth "$BERTH"
  mkdir -p "$XDG_CONFIG_HOME/vastai"; echo KEY-e2e > "$XDG_CONFIG_HOME/vastai/vast_api_key"
  UP=(--provider vast --query 'num_gpus=1 reliability>0.9')
fi
finish() {
  set +e
  [ -n "${feedpid:-}" ] && kill "$feedpid" 2>/dev/null
  [ -n "${sshpid:-}" ] && kill "$sshpid" 2>/dev/null
  for n in a b c d e f; do "$BERTH" destroy -y --force "$n" >/dev/null 2>&1 || true; done
  [ -n "${replica_pid:-}" ] && { kill "$replica_pid" 2>/dev/null; wait "$replica_pid" 2>/dev/null; }
  for p in $(pgrep -f "agent boot --instance $T/" || true); do kill "$p" 2>/dev/null || true; done
  cleanup
}
trap finish EXIT

declare -A ID UPAT
state() { # NAME: the machine's state as its provider has it (never through berth)
  if [ "$PROVIDER" = local ]; then
    "$PY" -c "import json,sys; print(json.load(open(sys.argv[1]))['state'])" \
      "$XDG_DATA_HOME/berth/local/instances/$1/machine.json" 2>/dev/null || echo unknown
  else
    api GET "/api/v0/instances/${ID[$1]}/" | "$PY" -c "import json,sys; r=json.load(sys.stdin)['instances']; print('gone' if r is None else r['actual_status'])"
  fi
}
stopped() { case "$(state "$1")" in stopped|exited) return 0 ;; *) return 1 ;; esac; }
no_client() { # no berth process of this test but the machines themselves (their agents)
  local p
  local cmd
  for p in $(pgrep -f "$BERTH" || true); do
    # Read the command line first: a machine's agent exiting as its machine stops reads empty
    # (it is gone, not a client), and its environment is the test's too.
    cmd=$(tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null || true)
    [ -n "$cmd" ] || continue
    tr '\0' '\n' < "/proc/$p/environ" 2>/dev/null | grep -qxF "XDG_DATA_HOME=$XDG_DATA_HOME" || continue
    grep -qE " agent |berth-vast-replica" <<<"$cmd" && continue
    kill -0 "$p" 2>/dev/null || continue
    die "a berth client is alive while the machines decide: $cmd"
  done
}
up() {
  "$BERTH" up "$1" --idle 1m "${UP[@]}" > "$T/up.$1" 2>&1 || die "up $1: $(cat "$T/up.$1")"
  UPAT[$1]=$(date +%s)
  ID[$1]=$("$BERTH" --json status "$1" | "$PY" -c "import json,sys; print(json.load(sys.stdin)['provider_id'])")
}
jupyter_of() { # NAME -> "PORT TOKEN" of its tunnel
  local url; url=$("$BERTH" jupyter "$1")
  echo "$(sed -E 's|http://127.0.0.1:([0-9]+)/.*|\1|' <<<"$url") ${url#*token=}"
}

echo "== $PROVIDER: five machines kept up, each by one thing"
up b
read -r jport jtoken <<<"$(jupyter_of b)"
kid=$("$PY" "$(dirname "$0")/idle_kernel.py" "$jport" "$jtoken" \
  $'import os, time\nwhile not os.path.exists("/tmp/end-cell"):\n    time.sleep(1)') \
  || die "could not start the kernel on b"
echo "b: kernel $kid runs a sleeping loop"
# Jupyter itself now calls it idle (a control message answered): only its shell tells the truth.
for _ in 1 2 3 4 5; do
  said=$(curl -s -H "Authorization: token $jtoken" "http://127.0.0.1:$jport/api/kernels/$kid" \
    | "$PY" -c "import json,sys; print(json.load(sys.stdin)['execution_state'])")
  [ "$said" = idle ] && break
  sleep 1
done
[ "$said" = idle ] || die "Jupyter says '$said' for b's kernel: the case this test is for did not arise"

up c
"$BERTH" ssh-config > /dev/null
mkfifo "$T/c.in"
ssh -F "$HOME/.ssh/config" -tt berth-c < "$T/c.in" > "$T/c.out" 2>&1 & sshpid=$!
exec 7> "$T/c.in"
( while :; do echo true >&7; sleep 30; done ) & feedpid=$!
echo "c: an interactive session types every 30 s"

up d
"$BERTH" ssh d -- "pkill -STOP -f 'jupyter-noteboo[k]'" || die "could not freeze Jupyter on d"
echo "d: Jupyter frozen"

up e
out=$("$BERTH" hold e); echo "$out"
expect_in "held until" "$out"

up f
out=$("$BERTH" idle f off); echo "$out"
expect_in "idle stop is off for 'f'" "$out"

echo "== the untouched machine, with a Jupyter tunnel open and no browser"
up a
"$BERTH" jupyter a > /dev/null
out=$("$BERTH" status a); echo "$out"
for w in "idle      1m" "stops     at" "signals:" "jupyter" "ssh" "gpu      absent" "cpu" "network"; do
  expect_in "$w" "$out"
done
"$BERTH" ls | grep -E "^a +$PROVIDER +running .* [0-9]+s idle " > /dev/null || die "ls shows no stop time for a: $("$BERTH" ls)"
status_d=$("$BERTH" status d); echo "$status_d"
grep -E "jupyter +busy \(unreadable\)" <<<"$status_d" > /dev/null || die "d does not show Jupyter unreadable"
status_e=$("$BERTH" status e)
expect_in "hold      until released" "$status_e"
expect_in "idle off" "$("$BERTH" ls | grep '^f ')"
setup_done=$(date +%s)

echo "== waiting, no berth client alive"
while :; do
  no_client
  now=$(date +%s)
  stopped a && [ -z "${a_at:-}" ] && a_at=$now && echo "a stopped $((a_at - UPAT[a])) s after its up"
  [ -n "${a_at:-}" ] && [ "$now" -ge $((setup_done + 100)) ] && break
  [ "$now" -gt $((UPAT[a] + 180)) ] && [ -z "${a_at:-}" ] && die "a is still $(state a) $((now - UPAT[a])) s after its up (idle 1m + 2 min)"
  sleep 5
done
for n in b c d e f; do
  [ "$(state "$n")" = running ] || die "$n is $(state "$n") $(( $(date +%s) - UPAT[$n] )) s after its up: it should be kept up ($("$BERTH" ls | grep "^$n "))"
done
echo "b c d e f still up $(( $(date +%s) - UPAT[b] ))-$(( $(date +%s) - UPAT[f] )) s after their up (idle 1m)"
out=$("$BERTH" ls); echo "$out"
grep -E "^a +$PROVIDER +stopped .*idle 1m: no jupyter, ssh, cpu or network activity \(gpu: absent\)" <<<"$out" >/dev/null \
  || die "ls does not say why a stopped"
out=$("$BERTH" status b)
expect_in "jupyter  busy" "$out"
expect_in "1 executing, 1 that Jupyter calls idle" "$out"

echo "== each one let go"
"$BERTH" ssh b -- touch /tmp/end-cell
kill "$feedpid"; feedpid=  # c's session stays open, with no more input
"$BERTH" ssh d -- "pkill -CONT -f 'jupyter-noteboo[k]'"
"$BERTH" hold e --release
"$BERTH" idle f 1m
released=$(date +%s)
declare -A AT
while :; do
  no_client
  now=$(date +%s); left=0
  for n in b c d e f; do
    if [ -z "${AT[$n]:-}" ]; then
      if stopped "$n"; then AT[$n]=$now; echo "$n stopped $((now - released)) s after it was let go"; else left=1; fi
    fi
  done
  [ $left = 0 ] && break
  [ "$now" -gt $((released + 180)) ] && die "still up 180 s after being let go: $(for n in b c d e f; do [ -z "${AT[$n]:-}" ] && echo -n "$n "; done)"
  sleep 5
done
grep -q "this machine stops in" "$T/c.out" || die "c's open terminal got no warning: $(tail -c 600 "$T/c.out")"
out=$("$BERTH" ls); echo "$out"
for n in b c d e f; do
  grep -E "^$n +$PROVIDER +stopped .*idle 1m: no " <<<"$out" >/dev/null || die "ls does not say why $n stopped"
done
kill "$sshpid" 2>/dev/null || true; sshpid=
[ $((AT[f] - released)) -ge 50 ] || die "f stopped $((AT[f] - released)) s after its idle time was set to 1m: the change must restart the clock"
echo "== a stopped machine starts clean, and a changed idle time outlives stop/start"
"$BERTH" start a > /dev/null 2>&1 || die "start a failed"
out=$("$BERTH" ls | grep '^a ')
expect_not_in "stopped itself" "$out"
expect_in "running" "$out"
"$BERTH" idle a 3m > /dev/null
"$BERTH" stop a > /dev/null 2>&1
"$BERTH" start a > /dev/null 2>&1 || die "start a (again) failed"
expect_in "idle      3m" "$("$BERTH" status a)"
"$BERTH" --json ls | "$PY" -c "import json,sys; a=[i for i in json.load(sys.stdin)['instances'] if i['name']=='a'][0]; assert a['idle_seconds']==180 and a['idle']['idle_seconds']==180, a" \
  || die "ls --json does not carry a's idle time"
echo "idle ($PROVIDER): all checks passed"
