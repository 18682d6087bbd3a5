#!/usr/bin/env bash
# The Vast.ai provider against the project's replica, whose instances are real machines (local
# namespaces with their own sshd): search, create, wait, SSH, the static agent uploaded and
# bootstrapped, Jupyter in headless Chromium and a kernel through the tunnel, stop, start,
# save, destroy; berth's ledger against the replica's bill; the max-hours watchdog stopping a
# machine through the API with no client; faults that must leak no instance and never record
# a live one destroyed; `berth ls --reconcile` after berth's whole data directory is lost.
source "$(dirname "$0")/lib.sh"
need_namespaces
: "${BERTH_VAST_REPLICA:?set BERTH_VAST_REPLICA}"
command -v jupyter-notebook >/dev/null || skip "jupyter-notebook missing"
PY=/usr/bin/python3; [ -x "$PY" ] || PY=python3
"$PY" -c "import websocket" 2>/dev/null || skip "python3-websocket missing"
CHROMIUM=$(command -v chromium || true)
[ -n "$CHROMIUM" ] || skip "chromium missing"
DATA=${BERTH_SHARED:-$(cd "$(dirname "$0")/../../.." && pwd)/shared}/vastai/data
[ -f "$DATA/offers_snapshot_2024-11-05.json" ] || die "the recorded Vast.ai data is missing at $DATA"

export HOME=$T/home XDG_DATA_HOME=$T/data XDG_CONFIG_HOME=$T/config
mkdir -p "$HOME"
MACHINES=$T/machines
"$BERTH_VAST_REPLICA" --offers "$DATA/offers_snapshot_2024-11-05.json" --api-key KEY-e2e \
  --boot-seconds 1 --credit 10 --machines "$MACHINES" --berth "$BERTH" > "$T/replica.out" 2>&1 & rpid=$!
finish() {
  for n in $("$BERTH" --json ls 2>/dev/null | python3 -c "import json,sys; [print(i['name']) for i in json.load(sys.stdin)['instances']]" 2>/dev/null); do
    "$BERTH" destroy -y --force "$n" >/dev/null 2>&1 || true
  done
  kill $rpid 2>/dev/null || true; wait $rpid 2>/dev/null || true
  for p in $(pgrep -f "agent boot --instance $MACHINES" || true); do kill "$p" 2>/dev/null || true; done
  cleanup
}
trap finish EXIT
for i in $(seq 1 100); do grep -q "listening on" "$T/replica.out" && break; sleep 0.05; done
port=$(sed -n 's/listening on 127.0.0.1:\([0-9]*\)/\1/p' "$T/replica.out")
[ -n "$port" ] || die "the replica did not start: $(cat "$T/replica.out")"
export VAST_URL=http://127.0.0.1:$port
mkdir -p "$XDG_CONFIG_HOME/vastai"; echo KEY-e2e > "$XDG_CONFIG_HOME/vastai/vast_api_key" # the CLI's file

api() { # METHOD PATH [BODY]: the replica's JSON answer
  curl -sS -X "$1" -H "Authorization: Bearer KEY-e2e" -H "Content-Type: application/json" \
    ${3:+--data "$3"} "$VAST_URL$2"
}
faults() { curl -sS -X POST --data "$1" "$VAST_URL/_replica/faults" >/dev/null; }
live_count() { api GET /api/v0/instances/ | python3 -c "import json,sys; print(len(json.load(sys.stdin)['instances']))"; }
row() { # ID FIELD
  api GET "/api/v0/instances/$1/" | python3 -c "import json,sys; r=json.load(sys.stdin)['instances']; print('GONE' if r is None else r.get('$2'))"
}
pid_of() { "$BERTH" --json status "$1" | python3 -c "import json,sys; print(json.load(sys.stdin)['provider_id'])"; }

echo "== up: rent the best RTX 4090 by DLPerf/\$, wait, SSH, upload the agent, bootstrap"
"$BERTH" up v1 --provider vast --query 'gpu_name=RTX_4090 num_gpus=1 reliability>0.95' > "$T/up1.out" 2> "$T/up1.err" \
  || die "up failed: $(cat "$T/up1.err")"
cat "$T/up1.err" "$T/up1.out"
expect_in "berth: 'v1' is up (vast" "$(cat "$T/up1.out")"
expect_in "uploading berth's agent (static" "$(cat "$T/up1.err")"
expect_in "pinned the machine's host key" "$(cat "$T/up1.err")"
id1=$(pid_of v1)
[ "$(row "$id1" label)" = "berth:v1" ] || die "instance $id1 lacks berth's label"
[ "$(row "$id1" image_uuid)" = "fastdotai/fastai-course" ] || die "not the seed's image"
[ "$(row "$id1" image_runtype)" = "ssh_direc ssh_proxy" ] || die "runtype: $(row "$id1" image_runtype)"
api GET /api/v0/ssh/ | grep -q "$(cut -d' ' -f2 "$XDG_DATA_HOME/berth/id_ed25519.pub" 2>/dev/null || cut -d' ' -f2 "$(ls "$XDG_DATA_HOME"/berth/*.pub | head -1)")" \
  || die "berth's key was not registered with the account before the rental"
# The endpoint is the one SPEC §5 names: the direct port, ports["22/tcp"] on public_ipaddr.
direct=$(api GET "/api/v0/instances/$id1/" | python3 -c "import json,sys; r=json.load(sys.stdin)['instances']; print(r['ports']['22/tcp'][0]['HostPort'])")
"$BERTH" --json status v1 | python3 -c "import json,sys; s=json.load(sys.stdin); assert s['ssh']['port']==$direct, s" \
  || die "berth does not use the direct port $direct"
out=$("$BERTH" ssh v1 -- 'hostname; test -z "$(ls /storage 2>/dev/null)" && echo no-storage; command -v berth')
expect_in "vast-$id1" "$out"
expect_in "/usr/local/bin/berth" "$out"
# The environment persists inside the machine's kept volume: ~/.config is a link into it.
"$BERTH" ssh v1 -- 'mkdir -p ~/.config/e2e && echo kept > ~/.config/e2e/setting && echo work > /workspace/w.txt'
[ "$("$BERTH" ssh v1 -- 'readlink ~/.config')" = "/workspace/.berth/storage/cfg/.config" ] || die "~/.config not persisted"

echo "== Jupyter through the tunnel: headless Chromium sees the file list; a kernel says 1+1 = 2"
url=$("$BERTH" jupyter v1)
jport=$(sed -E 's|http://127.0.0.1:([0-9]+)/.*|\1|' <<<"$url"); token=${url#*token=}
timeout 60 "$CHROMIUM" --headless --no-sandbox --disable-gpu --no-first-run --disable-background-networking \
  --disable-component-update --disable-sync --user-data-dir="$T/chrome" --virtual-time-budget=5000 \
  --dump-dom "$url" 2>/dev/null > "$T/tree.html" || true
grep -q 'w.txt' "$T/tree.html" || { head -c 1500 "$T/tree.html"; die "Chromium did not see /workspace in Jupyter"; }
"$PY" "$(dirname "$0")/jupyter_kernel.py" "$jport" "$token" "on the vast machine"
# The token is never on a command line: no process's arguments hold it (any user reads them).
[ -n "$token" ] || die "no token in the Jupyter URL"
if ps -eo args= | grep -F -- "$token" | grep -v grep >/dev/null; then
  die "Jupyter's token is visible in ps: $(ps -eo pid=,args= | grep -F -- "$token" | grep -v grep | head -2)"
fi
echo "ok: the token is in no process's command line"

echo "== transfer: every byte through the machine's SSH port is counted and billed per GB"
head -c 20000000 /dev/urandom | "$BERTH" ssh v1 -- 'cat > /tmp/blob'
[ "$("$BERTH" ssh v1 -- 'cat /tmp/blob' | wc -c)" = 20000000 ] || die "the blob did not come back whole"
python3 -c "
down, up = float('$(row "$id1" inet_down_billed)') * 2**30, float('$(row "$id1" inet_up_billed)') * 2**30
print(f'replica counted {down/1e6:.1f} MB down (the agent, 20 MB blob, SSH), {up/1e6:.1f} MB up')
assert 20e6 <= down < 60e6 and 20e6 <= up < 60e6" || die "transfer not counted"  # + the 10 MB agent, SSH, Jupyter

echo "== stop: rent stops, the machine is down; start: the environment and /workspace are back"
sleep 2
"$BERTH" stop v1 > /dev/null
[ "$(row "$id1" actual_status)" = "stopped" ] || die "replica says $(row "$id1" actual_status) after stop"
expect_exit 1 "$BERTH" ssh v1 -- true
expect_in "is stopped" "$out"
sleep 2
"$BERTH" start v1 > "$T/start.out" 2> "$T/start.err" || die "start failed: $(cat "$T/start.err")"
[ "$(row "$id1" actual_status)" = "running" ] || die "replica says $(row "$id1" actual_status) after start"
out=$("$BERTH" ssh v1 -- 'cat ~/.config/e2e/setting /workspace/w.txt')
[ "$out" = $'kept\nwork' ] || die "after start: $out"
url=$("$BERTH" jupyter v1); jport=$(sed -E 's|http://127.0.0.1:([0-9]+)/.*|\1|' <<<"$url")
curl -fsS "http://127.0.0.1:$jport/api/status?token=${url#*token=}" >/dev/null || die "Jupyter not back after start"
sleep 1

echo "== destroy: the guard names unsaved work; save over SSH; destroy; recorded only once gone"
expect_exit 1 "$BERTH" destroy -y v1 --repo "$T/repo"
expect_in "holds work no snapshot has" "$out"
"$BERTH" save v1 --repo "$T/repo" > /dev/null
"$BERTH" destroy -y v1 --repo "$T/repo" > /dev/null
[ "$(row "$id1" actual_status)" = "GONE" ] || die "instance $id1 still exists"
[ ! -d "$MACHINES/instances/vast-$id1" ] || die "the replica left the machine's directory"

echo "== the ledger matches the replica's bill within 1%"
ledger=$("$BERTH" --json account | python3 -c "import json,sys; print(json.load(sys.stdin)['ledger_total'])")
billed=$(api GET /api/v0/users/current/ | python3 -c "import json,sys; print(json.load(sys.stdin)['billed_total'])")
"$BERTH" --json account | python3 -c "import json,sys; a=json.load(sys.stdin); assert a['ledger'][0]['transfer'] > 0, a" \
  || die "the ledger has no transfer"
python3 -c "
l, b = $ledger, $billed
print(f'berth ledger \${l:.8f}, replica billed \${b:.8f}, difference {abs(l-b)/b*100:.3f}%')
assert b > 0 and abs(l - b) / b < 0.01"  || die "ledger $ledger vs billed $billed"
out=$("$BERTH" account)
expect_in "credit      \$" "$out"
expect_in "hours left" "$out"

echo "== --max-hours: the machine's watcher stops it through the API, no client involved"
"$BERTH" up w1 --provider vast --query 'gpu_name=RTX_3090' --max-hours 0.0015 > /dev/null 2> "$T/w1.err" \
  || die "up w1: $(cat "$T/w1.err")"
expect_in "the idle watcher" "$(cat "$T/w1.err")"
idw=$(pid_of w1)
for i in $(seq 1 60); do [ "$(row "$idw" actual_status)" = "stopped" ] && break; sleep 0.5; done
[ "$(row "$idw" actual_status)" = "stopped" ] || die "the watchdog did not stop instance $idw"
[ "$(row "$idw" intended_status)" = "stopped" ] || die "stopped, but not through the API"
"$BERTH" ls | grep -E "^w1 .*stopped .*stopped itself: max-hours reached" >/dev/null || die "berth ls does not show w1 stopped by max-hours: $("$BERTH" ls)"
# The machine's own key (CONTAINER_API_KEY) reaches its own instance and nothing else.
ckey=$(python3 -c "import json; print(json.load(open('$MACHINES/instances/vast-$idw/spec.json'))['env']['CONTAINER_API_KEY'])")
[ -n "$ckey" ] || die "the machine got no CONTAINER_API_KEY"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $ckey" "$VAST_URL/api/v0/instances/$idw/")
[ "$code" = 200 ] || die "the instance key cannot read its own instance ($code)"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $ckey" "$VAST_URL/api/v0/instances/")
[ "$code" = 401 ] || die "the instance key lists the account ($code)"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $ckey" "$VAST_URL/api/v0/users/current/")
[ "$code" = 401 ] || die "the instance key reads the account ($code)"
"$BERTH" destroy -y --force w1 > /dev/null

echo "== credit: up warns when the session would run the credit out; at zero Vast stops the machine"
# ~20 s of rent at this offer's price: enough for up to finish on a loaded machine, then Vast stops it
faults '{"credit_left":0.002}'
"$BERTH" up c1 --provider vast --query 'gpu_name=RTX_3090' --hours 1 > /dev/null 2> "$T/c1.err" \
  || die "up c1: $(cat "$T/c1.err")"
expect_in "would run the credit out" "$(cat "$T/c1.err")"
idc=$(pid_of c1)
for i in $(seq 1 80); do [ "$(row "$idc" actual_status)" = "stopped" ] && break; sleep 0.5; done
[ "$(row "$idc" actual_status)" = "stopped" ] || die "instance $idc kept running on no credit"
expect_in "credit is exhausted" "$(row "$idc" status_msg)"
"$BERTH" ls | grep -E "^c1 .*stopped" >/dev/null || die "berth ls does not show c1 stopped"
"$BERTH" destroy -y --force c1 > /dev/null
faults '{"credit_left":10}'

echo "== faults: a machine that ends exited/offline is reported and destroyed (nothing bills)"
OFFER=$("$BERTH" --json offers 'gpu_name=RTX_3090' --provider vast --limit 1 | python3 -c "import json,sys; print(json.load(sys.stdin)['offers'][0]['id'])")
for fate in exited offline; do
  before=$(live_count)
  faults "{\"fate\":[\"$fate\"]}"
  expect_exit 1 "$BERTH" up "f-$fate" --provider vast --offer "$OFFER" --timeout 30
  expect_in "did not start: actual_status $fate" "$out"
  expect_in "was destroyed: it bills nothing" "$out"
  [ "$(live_count)" = "$before" ] || die "a $fate instance leaked"
  ! "$BERTH" ls | grep -q "^f-$fate " || die "f-$fate is still listed"
done

echo "== faults: the rental's answer is lost (502 after the work): retried by label, one instance"
faults '{"after":[502],"match":"PUT /api/v0/asks/"}'
"$BERTH" up g1 --provider vast --offer "$OFFER" > /dev/null 2> "$T/g1.err" || die "up g1: $(cat "$T/g1.err")"
n=$(api GET /api/v0/instances/ | python3 -c "import json,sys; print(sum(1 for r in json.load(sys.stdin)['instances'] if r['label']=='berth:g1'))")
[ "$n" = 1 ] || die "$n instances carry berth:g1"
echo "== faults: 429/503 on reads are retried"
faults '{"next":[429,503],"match":"GET /api/v0/instances/"}'
"$BERTH" ls | grep -E "^g1 .*running" >/dev/null || die "ls under 429/503"
echo "== faults: slow answers time out and are retried"
faults '{"delay_ms":2500}'; (sleep 2; faults '{}') & lifter=$!
BERTH_HTTP_TIMEOUT=1 "$BERTH" account > /dev/null || die "account under slow answers"
wait $lifter
echo "== faults: a refused DELETE leaves the record live; a lost DELETE answer is confirmed by GET"
idg=$(pid_of g1)
faults '{"next":[500],"match":"DELETE /api/v0/instances/"}'
expect_exit 1 "$BERTH" destroy -y --force g1
[ "$(row "$idg" actual_status)" = "running" ] || die "g1 not running after a refused destroy"
"$BERTH" --json status g1 | grep -q '"status":"destroying"' || die "g1 not kept as destroying"
faults '{"after":[502],"match":"DELETE /api/v0/instances/"}'
"$BERTH" destroy -y --force g1 > /dev/null || die "destroy after a lost answer"
[ "$(row "$idg" actual_status)" = "GONE" ] || die "g1 still exists"

echo "== bids: below min_bid refused; --type bid without --bid refused; a dropped bid is undone"
expect_exit 2 "$BERTH" up b1 --provider vast --offer "$OFFER" --bid 0.0001
expect_in "minimum bid" "$out"
expect_exit 2 "$BERTH" up b1 --provider vast --query 'gpu_name=RTX_3090' --type bid
expect_in "silently rents on-demand" "$out"
minbid=$(api PUT /api/v0/search/asks/ "{\"q\":{\"id\":{\"eq\":$OFFER}}}" | python3 -c "import json,sys; print(json.load(sys.stdin)['offers'][0]['min_bid'] + 0.01)")
before=$(live_count)
faults '{"fate":["on-demand"]}'
expect_exit 1 "$BERTH" up b1 --provider vast --offer "$OFFER" --bid "$minbid"
expect_in "on-demand although berth bid" "$out"
[ "$(live_count)" = "$before" ] || die "the on-demand instance was not destroyed"

echo "== interruptible: outbid, the machine stops with its data kept; it resumes when the bid wins"
"$BERTH" up b2 --provider vast --offer "$OFFER" --bid "$minbid" > /dev/null 2> "$T/b2.err" || die "up b2: $(cat "$T/b2.err")"
idb=$(pid_of b2)
[ "$(row "$idb" is_bid)" = True ] || die "b2 is not interruptible"
"$BERTH" ssh b2 -- 'echo kept > /workspace/k.txt'
faults '{"outbid":true}'
"$BERTH" ls | grep -E "^b2 .*stopped .*outbid" >/dev/null || die "ls does not show b2 outbid: $("$BERTH" ls)"
faults '{"outbid":false}'
for i in $(seq 1 60); do [ "$(row "$idb" actual_status)" = "running" ] && break; sleep 0.5; done
"$BERTH" ls | grep -E "^b2 .*running" >/dev/null || die "ls does not show b2 running again"
[ "$("$BERTH" ssh b2 -- cat /workspace/k.txt)" = kept ] || die "b2 lost /workspace"
url=$("$BERTH" jupyter b2 2> "$T/b2j.err"); jport=$(sed -E 's|http://127.0.0.1:([0-9]+)/.*|\1|' <<<"$url")
curl -fsS "http://127.0.0.1:$jport/api/status?token=${url#*token=}" >/dev/null || die "no Jupyter after the resume"  # the restart killed the old one: berth bootstrapped again
"$BERTH" destroy -y --force b2 > /dev/null

echo "== a bid change re-decides: outbid at a higher rival bid, the machine resumes once ours is higher"
"$BERTH" up b3 --provider vast --offer "$OFFER" --bid "$minbid" > /dev/null 2> "$T/b3.err" || die "up b3: $(cat "$T/b3.err")"
idb=$(pid_of b3)
"$BERTH" ssh b3 -- 'echo kept3 > /workspace/k.txt'
rival=$(python3 -c "print(round($minbid + 0.05, 4))")
faults "{\"outbid\": $rival}"
"$BERTH" ls | grep -E "^b3 .*stopped .*outbid" >/dev/null || die "ls does not show b3 outbid: $("$BERTH" ls)"
api PUT "/api/v0/instances/bid_price/$idb/" "{\"client_id\":\"me\",\"price\":$(python3 -c "print($rival - 0.01)")}" >/dev/null
[ "$(row "$idb" actual_status)" = stopped ] || die "a bid still below the rival's resumed b3"
api PUT "/api/v0/instances/bid_price/$idb/" "{\"client_id\":\"me\",\"price\":$(python3 -c "print($rival + 0.01)")}" >/dev/null
[ "$(row "$idb" dph_base)" = "$(python3 -c "print($rival + 0.01)")" ] || die "the new bid is not the instance's price: $(row "$idb" dph_base)"
for i in $(seq 1 60); do [ "$(row "$idb" actual_status)" = "running" ] && break; sleep 0.5; done
"$BERTH" ls | grep -E "^b3 .*running" >/dev/null || die "ls does not show b3 running after the higher bid"
[ "$("$BERTH" ssh b3 -- cat /workspace/k.txt)" = kept3 ] || die "b3 lost /workspace"
faults '{"outbid": false}'
"$BERTH" destroy -y --force b3 > /dev/null

echo "== reboot (from Vast's console): the container restarts, onstart runs again, berth reconnects"
"$BERTH" up rb --provider vast --offer "$OFFER" > /dev/null 2> "$T/rb.err" || die "up rb: $(cat "$T/rb.err")"
idrb=$(pid_of rb)
"$BERTH" ssh rb -- 'echo before > /workspace/r.txt; cat /root/.berth/vast.env | wc -l' > "$T/rb.env"
api PUT "/api/v0/instances/reboot/$idrb/" '{}' | grep -q '"success": *true' || die "reboot refused"
for i in $(seq 1 60); do [ "$(row "$idrb" actual_status)" = "running" ] && break; sleep 0.5; done
[ "$("$BERTH" ssh rb -- cat /workspace/r.txt)" = before ] || die "reboot lost /workspace"
[ "$("$BERTH" ssh rb -- 'cat /proc/1/stat | cut -d" " -f22')" != "" ] || die "no machine after reboot"
url=$("$BERTH" jupyter rb 2> "$T/rbj.err"); jport=$(sed -E 's|http://127.0.0.1:([0-9]+)/.*|\1|' <<<"$url")
curl -fsS "http://127.0.0.1:$jport/api/status?token=${url#*token=}" >/dev/null || die "no Jupyter after the reboot: $(cat "$T/rbj.err")"
"$BERTH" destroy -y --force rb > /dev/null

echo "== an offer taken between search and rent: berth searches again and rents the next best"
# sshd also lags 8 s behind "running" here (Vast reports running first): berth waits it out.
faults '{"snipe": 1, "sshd_lag": 8}'
"$BERTH" up s1 --provider vast --query 'gpu_name=RTX_4090 num_gpus=1 reliability>0.95' > "$T/s1.out" 2> "$T/s1.err" \
  || die "up after a taken offer failed: $(cat "$T/s1.err")"
expect_in "was rented by someone else meanwhile; renting the next best" "$(cat "$T/s1.err")"
first=$(grep -o "renting offer [0-9]*" "$T/s1.out" "$T/s1.err" | head -1 | grep -o "[0-9]*$")
last=$(grep -o "renting offer [0-9]*" "$T/s1.out" "$T/s1.err" | tail -1 | grep -o "[0-9]*$")
[ -n "$first" ] && [ "$first" != "$last" ] || die "no second offer was planned: $(cat "$T/s1.out" "$T/s1.err")"
ids1=$(pid_of s1)
[ "$(row "$ids1" ask_contract_id)" = "$last" ] || die "s1 is not on the next offer $last"
[ "$("$BERTH" ssh s1 -- echo up)" = up ] || die "no SSH to s1"
# The taken offer left search: berth's own offers no longer list it.
"$BERTH" --json offers "gpu_name=RTX_4090 num_gpus=1" --provider vast --limit 500 \
  | python3 -c "import json,sys; sys.exit(0 if all(str(o['id']) != '$first' for o in json.load(sys.stdin)['offers']) else 1)" \
  || die "the taken offer $first is still offered"
faults '{"sshd_lag": 3}'
# A rented offer is not for rent: berth says so before trying.
expect_exit 2 "$BERTH" up s2 --provider vast --offer "$last"
expect_in "may be rented already" "$out"
# The offer the user named is taken between berth's look and its rental (Vast's 404
# no_such_ask): nothing is made, nothing is recorded, and the error says what happened.
before=$(live_count)
SNIPED=$("$BERTH" --json offers 'gpu_name=RTX_3090' --provider vast --limit 2 | python3 -c "import json,sys; print(json.load(sys.stdin)['offers'][1]['id'])")
faults '{"snipe": 1}'
expect_exit 1 "$BERTH" up s2 --provider vast --offer "$SNIPED"
expect_in "offer $SNIPED was rented by someone else between the search and the rental" "$out"
[ "$(live_count)" = "$before" ] || die "a failed rental left an instance"
"$BERTH" ls | grep -q "^s2 " && die "a failed rental left a record"
"$BERTH" destroy -y --force s1 > /dev/null
# Destroyed, the offer is for rent again.
api PUT /api/v0/search/asks/ "{\"q\":{\"id\":{\"eq\":$last}}}" | grep -q "\"id\": *$last" || die "offer $last did not come back after destroy"

echo "== up --from latest: destroy today, rent again tomorrow: packages, keys, config, notebooks"
python3 "$(dirname "$0")/make_wheel.py" "$T"
pip_flags="--user --no-index --no-deps --no-cache-dir --disable-pip-version-check"
/usr/bin/python3 -m pip install --help 2>/dev/null | grep -q -- --break-system-packages && pip_flags+=" --break-system-packages"
before=$(live_count)
expect_exit 1 "$BERTH" up wf --provider vast --offer "$OFFER" --from latest --repo "$T/wrepo"
expect_in "no berth repository at $T/wrepo" "$out"
mkdir -p "$T/wdir" && echo x > "$T/wdir/x" && "$BERTH" save "$T/wdir" --repo "$T/wrepo" > /dev/null
expect_exit 2 "$BERTH" up wf --provider vast --offer "$OFFER" --from latest --repo "$T/wrepo"
expect_in "no snapshot of an instance named 'wf'" "$out"
did=$("$BERTH" --json snapshots --repo "$T/wrepo" | python3 -c "import json,sys; print(json.load(sys.stdin)['snapshots'][0]['id'])")
expect_exit 2 "$BERTH" up wf --provider vast --offer "$OFFER" --from "$did" --repo "$T/wrepo"
expect_in "is of a directory, not of a machine" "$out"
[ "$(live_count)" = "$before" ] || die "a missing snapshot still rented a machine"
"$BERTH" up wf --provider vast --offer "$OFFER" > /dev/null 2> "$T/wf.err" || die "up wf: $(cat "$T/wf.err")"
"$BERTH" ssh wf -- 'cat > /tmp/berthdemo-1.0-py3-none-any.whl' < "$T/berthdemo-1.0-py3-none-any.whl"
"$BERTH" ssh wf -- "/usr/bin/python3 -m pip install $pip_flags /tmp/berthdemo-1.0-py3-none-any.whl" > /dev/null
"$BERTH" ssh wf -- 'set -e; mkdir -p ~/.ssh; echo not-a-real-key > ~/.ssh/id_test; chmod 600 ~/.ssh/id_test
  git config --global user.name "Ana Tester"; echo "{\"cells\": [], \"nbformat\": 4}" > /workspace/nb.ipynb'
"$BERTH" save wf --repo "$T/wrepo" > /dev/null
"$BERTH" --json snapshots --repo "$T/wrepo" | python3 -c "
import json,sys; s=[x for x in json.load(sys.stdin)['snapshots'] if x.get('instance')][0]; assert s['instance'] == 'wf' and s['provider'] == 'vast', s" \
  || die "the snapshot does not say which machine and provider it came from"
# The guard knows where wf was saved: no --repo needed, no --force.
"$BERTH" destroy -y wf > "$T/wfd.out" 2>&1 || die "destroy after a save to another repository: $(cat "$T/wfd.out")"
"$BERTH" up wf --provider vast --offer "$OFFER" --from latest --repo "$T/wrepo" > /dev/null 2> "$T/wf2.err" \
  || die "up --from: $(cat "$T/wf2.err")"
expect_in "restoring snapshot" "$(cat "$T/wf2.err")"
[ "$("$BERTH" ssh wf -- '/usr/bin/python3 -c "import berthdemo; print(berthdemo.VALUE)"')" = 42 ] || die "the pip --user package did not come back"
[ "$("$BERTH" ssh wf -- 'stat -L -c %a ~/.ssh/id_test')" = 600 ] || die "the SSH key came back without mode 600"
[ "$("$BERTH" ssh wf -- 'git config --global user.name')" = "Ana Tester" ] || die "git config did not come back"
"$BERTH" ssh wf -- 'cat /workspace/nb.ipynb' | grep -q nbformat || die "the notebook did not come back"
"$BERTH" destroy -y --force wf > /dev/null

echo "== reconcile: berth's whole data directory is lost; the labelled machine comes back"
"$BERTH" up r1 --provider vast --offer "$OFFER" > /dev/null 2> "$T/r1.err" || die "up r1: $(cat "$T/r1.err")"
idr=$(pid_of r1)
faults '{"list":["malformed"]}'
expect_exit 1 "$BERTH" ls --reconcile
expect_in "without a list of instances" "$out"
faults '{"list":["empty"]}'
"$BERTH" ls --reconcile | grep -E "^r1 .*running" >/dev/null || die "an empty list made r1 disappear"
rm -rf "$XDG_DATA_HOME/berth"
"$BERTH" ls | grep -q "no instances" || die "state not lost?"
"$BERTH" ls --reconcile > "$T/rec.out" 2>&1
grep -E "^r1 .*running" "$T/rec.out" >/dev/null || die "reconcile did not bring r1 back: $(cat "$T/rec.out")"
[ "$("$BERTH" ssh r1 -- hostname)" = "vast-$idr" ] || die "no SSH to the reconciled r1 with berth's new key"
url=$("$BERTH" jupyter r1); jport=$(sed -E 's|http://127.0.0.1:([0-9]+)/.*|\1|' <<<"$url")
curl -fsS "http://127.0.0.1:$jport/api/status?token=${url#*token=}" >/dev/null || die "no Jupyter on the reconciled r1"
"$BERTH" destroy -y --force r1 > /dev/null
[ "$(live_count)" = 0 ] || die "instances left at the end: $(live_count)"
[ -z "$(pgrep -f "agent boot --instance $MACHINES" || true)" ] || die "machine processes left"
echo "OK"
