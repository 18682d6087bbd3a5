#!/usr/bin/env bash
# `berth up --provider paperspace` against the replica with real machines (VMs: a kept disk,
# the user `paperspace`, sshd on the machine's public IP, startup scripts run as root): the
# key arrives by berth's run-once startup script, the agent is bootstrapped as `paperspace`,
# Jupyter is loaded in headless Chromium through the tunnel and a kernel computes 1+1; a file
# in $HOME survives stop/start; the dynamic IP changes and the host key pin (by name) holds;
# the run-once script ran once; berth's ledger is within 1% of the replica's bill; destroy
# leaves the replica empty; reconcile after berth's data directory is lost (the new key by a
# new run-once script, at the next boot); an idle machine powers itself off; kill -9 of `up`
# while it bootstraps.
source "$(dirname "$0")/lib.sh"
need_namespaces
: "${BERTH_PAPERSPACE_REPLICA:?set BERTH_PAPERSPACE_REPLICA}"
command -v jupyter-notebook >/dev/null || skip "jupyter-notebook missing"
PY=/usr/bin/python3; [ -x "$PY" ] || PY=python3
"$PY" -c "import websocket" 2>/dev/null || skip "python3-websocket missing"
CHROMIUM=$(command -v chromium || true)
[ -n "$CHROMIUM" ] || skip "chromium missing"
# The replica's VMs listen on 127.10.0.x:22: nothing may hold port 22 on every address.
if ss -ltnH 2>/dev/null | awk '{print $4}' | grep -qE '^(0\.0\.0\.0|\*|\[::\]):22$'; then skip "port 22 is taken on every address (a system sshd)"; fi
DATA=${BERTH_SHARED:-$(cd "$(dirname "$0")/../../.." && pwd)/shared}/paperspace/data
[ -f "$DATA/machine_types.csv" ] || die "the recorded Paperspace data is missing at $DATA"
export HOME=$T/home XDG_DATA_HOME=$T/data XDG_CONFIG_HOME=$T/config PAPERSPACE_API_KEY=ps-e2e-key
mkdir -p "$HOME"
"$BERTH_PAPERSPACE_REPLICA" --data "$DATA" --api-key ps-e2e-key --boot-seconds 2 \
  --machines "$T/machines" --berth "$BERTH" > "$T/replica.out" 2>&1 & rpid=$!
finish() {
  set +e
  "$BERTH" destroy -y --force p1 >/dev/null 2>&1
  "$BERTH" destroy -y --force k9 >/dev/null 2>&1
  kill $rpid 2>/dev/null; wait $rpid 2>/dev/null
  for p in $(pgrep -f "agent boot --instance $T/" || true); do kill "$p" 2>/dev/null; done
  cleanup
}
trap finish EXIT
for i in $(seq 1 200); do grep -q "listening on" "$T/replica.out" && break; sleep 0.05; done
port=$(sed -n 's/listening on 127.0.0.1:\([0-9]*\)/\1/p' "$T/replica.out")
[ -n "$port" ] || die "the replica did not start: $(cat "$T/replica.out")"
export PAPERSPACE_API_URL=http://127.0.0.1:$port/v1
ps_api() { curl -sS -H "Authorization: Bearer ps-e2e-key" "$PAPERSPACE_API_URL$1"; }
count() { ps_api "$1" | python3 -c "import json,sys; print(len(json.load(sys.stdin)['items']))"; }
ip_of() { "$BERTH" --json status p1 | python3 -c "import json,sys; print(json.load(sys.stdin)['ssh']['host'])"; }

echo "== up: the key by startup script, the agent as paperspace, Jupyter through the tunnel"
"$BERTH" up p1 --provider paperspace --machine-type C5 --region 'East Coast (NY2)' --max-hours 3 > "$T/up.out" 2> "$T/up.err" \
  || die "up failed: $(cat "$T/up.err")"
cat "$T/up.err" "$T/up.out"
expect_in "berth: 'p1' is up (paperspace" "$(cat "$T/up.out")"
expect_in "checking SSH as paperspace@" "$(cat "$T/up.err")"
id=$("$BERTH" --json status p1 | python3 -c "import json,sys; print(json.load(sys.stdin)['provider_id'])")
ps_api "/machines/$id" | python3 -c "
import json,sys; m=json.load(sys.stdin)
assert m['name']=='berth-p1' and m['machineType']=='C5' and m['region']=='NY2', m
assert m['autoShutdownEnabled'] is True and m['autoShutdownTimeout']==3, m  # the provider-side backstop
" || die "the machine was not made as asked"
[ "$(ps_api /startup-scripts | python3 -c "import json,sys; s=json.load(sys.stdin)['items']; print(s[0]['name'], s[0]['isRunOnce'], s[0]['assignedMachineIds'])")" = "berth-p1-key True ['$id']" ] \
  || die "berth's key script: $(ps_api /startup-scripts)"
[ "$("$BERTH" ssh p1 -- whoami)" = paperspace ] || die "not the paperspace user"
url=$("$BERTH" jupyter p1)
jport=$(sed -E 's|http://127.0.0.1:([0-9]+)/.*|\1|' <<<"$url"); token=${url#*token=}
"$BERTH" ssh p1 -- 'echo hello > ~/work/hello.txt'
timeout 60 "$CHROMIUM" --headless --no-sandbox --disable-gpu --no-first-run --disable-background-networking \
  --disable-component-update --disable-sync --user-data-dir="$T/chrome" --virtual-time-budget=5000 \
  --dump-dom "$url" 2>/dev/null > "$T/tree.html" || true
grep -q 'hello.txt' "$T/tree.html" || { head -c 1500 "$T/tree.html"; die "Chromium did not see the work directory in Jupyter"; }
"$PY" "$(dirname "$0")/jupyter_kernel.py" "$jport" "$token" p1

echo "== stop and start: the disk is kept, the IP changes, the host key pin holds"
"$BERTH" ssh p1 -- 'echo kept > ~/file.txt; pip --version >/dev/null 2>&1; true'
ip1=$(ip_of)
"$BERTH" stop p1 > /dev/null 2>&1 || die "stop failed"
[ "$(ps_api "/machines/$id" | python3 -c "import json,sys; print(json.load(sys.stdin)['state'])")" = off ] \
  || "$BERTH" status p1
"$BERTH" start p1 > "$T/start.out" 2>&1 || die "start failed: $(cat "$T/start.out")"
ip2=$(ip_of)
[ "$ip1" != "$ip2" ] || die "the dynamic IP did not change ($ip1)"
[ "$("$BERTH" ssh p1 -- 'cat ~/file.txt')" = kept ] || die "\$HOME was not kept across stop/start"
grep -c "^berth-p1 " "$XDG_DATA_HOME/berth/known_hosts" | grep -qx 1 || die "the host key was pinned again (or not at all)"
out=$("$BERTH" ssh p1 -- 'ls /var/lib/paperspace-replica; wc -l < ~/.ssh/authorized_keys')
expect_in "ran-" "$out"
[ "$(tail -1 <<<"$out")" = 1 ] || die "the run-once key script ran more than once: $out"

sleep 20 # a session long enough that a request's latency is not a percent of it
echo "== the ledger matches the replica's bill within 1%"
"$BERTH" stop p1 > /dev/null 2>&1
ledger=$("$BERTH" --json account | python3 -c "import json,sys; print(json.load(sys.stdin)['ledger_total'])")
billed=$(curl -sS "http://127.0.0.1:$port/_replica/bill" | python3 -c "import json,sys; print(json.load(sys.stdin)['total'])")
python3 -c "
l, b = $ledger, $billed
print(f'berth ledger \${l:.8f}, replica billed \${b:.8f}, difference {abs(l-b)/b*100:.3f}%')
assert b > 0 and abs(l - b) / b < 0.01" || die "ledger $ledger vs billed $billed"

echo "== reconcile after berth's data directory is lost: a stopped machine, then a running one"
rm -rf "$XDG_DATA_HOME/berth"
"$BERTH" ls | grep -q "no instances" || die "state not lost?"
"$BERTH" ls --reconcile --provider paperspace > "$T/rec.out" 2>&1 || die "reconcile: $(cat "$T/rec.out")"
grep -E "^p1 .*stopped" "$T/rec.out" > /dev/null || die "reconcile did not bring p1 back: $(cat "$T/rec.out")"
"$BERTH" start p1 > "$T/start2.out" 2>&1 || die "start after reconcile: $(cat "$T/start2.out")"
[ "$("$BERTH" ssh p1 -- 'cat ~/file.txt')" = kept ] || die "no SSH with berth's new key after reconcile"
rm -rf "$XDG_DATA_HOME/berth"
"$BERTH" ls --reconcile --provider paperspace > "$T/rec2.out" 2>&1 || die "reconcile: $(cat "$T/rec2.out")"
grep -E "^p1 .*running" "$T/rec2.out" > /dev/null || die "reconcile did not bring running p1 back: $(cat "$T/rec2.out")"
"$BERTH" status p1 | grep -q "at its next boot" || die "reconcile did not say when the new key arrives: $("$BERTH" status p1)"
"$BERTH" stop p1 > /dev/null 2>&1 && "$BERTH" start p1 > "$T/start3.out" 2>&1 || die "stop/start after reconcile: $(cat "$T/start3.out")"
[ "$("$BERTH" ssh p1 -- 'cat ~/file.txt')" = kept ] || die "no SSH after the running machine's reconcile"
url=$("$BERTH" jupyter p1); jport=$(sed -E 's|http://127.0.0.1:([0-9]+)/.*|\1|' <<<"$url")
curl -fsS "http://127.0.0.1:$jport/api/status?token=${url#*token=}" > /dev/null || die "no Jupyter on the reconciled p1"

echo "== idle stop: the machine powers itself off, Paperspace sees it off, the reason is kept"
"$BERTH" idle p1 1m > "$T/idle.out" 2>&1 || die "berth idle: $(cat "$T/idle.out")"
t0=$(date +%s)
state_of() { ps_api "/machines/$id" | python3 -c "import json,sys; print(json.load(sys.stdin)['state'])"; }
for i in $(seq 1 120); do [ "$(state_of)" = off ] && break; sleep 2; done
[ "$(state_of)" = off ] || die "p1 did not stop itself within 4 minutes: $("$BERTH" status p1 2>&1)"
echo "stopped itself after $(( $(date +%s) - t0 )) s"
"$BERTH" ls | grep -E "^p1 .*stopped" > /dev/null || die "berth ls does not show p1 stopped: $("$BERTH" ls)"
"$BERTH" start p1 > /dev/null 2>&1 || die "start after the idle stop"
expect_in "idle" "$("$BERTH" ssh p1 -- 'cat ~/.berth/stops.log')"

echo "== destroy: stop, wait for off, delete; the replica is empty"
"$BERTH" destroy -y --force p1 > /dev/null 2>&1 || die "destroy failed"
[ "$(count /machines)" = 0 ] || die "a machine is left: $(ps_api /machines)"
[ "$(count /startup-scripts)" = 0 ] || die "berth's key script is left"
[ -z "$(ls -A "$T/machines/instances" 2>/dev/null)" ] || die "the VM's disk is left: $(ls "$T/machines/instances")"
echo "== kill -9 of up while it bootstraps the machine over SSH: berth ls leaves nothing billing"
"$BERTH" up k9 --provider paperspace --machine-type C5 > "$T/k9.out" 2>&1 & upid=$!
for i in $(seq 1 600); do grep -q "checking SSH" "$T/k9.out" && break; sleep 0.1; done
grep -q "checking SSH" "$T/k9.out" || die "up k9 never reached SSH: $(cat "$T/k9.out")"
sleep 1; kill -9 $upid; wait $upid 2>/dev/null || true
"$BERTH" ls > "$T/ls9.out" 2>&1 || true
cat "$T/ls9.out"
[ "$(count /machines)" = 0 ] || die "a killed up left a machine: $(ps_api /machines)"
[ "$(count /startup-scripts)" = 0 ] || die "a killed up left its key script"
echo "paperspace up: all checks passed"
