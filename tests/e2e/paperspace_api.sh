#!/usr/bin/env bash
# The paperspace provider against the project's replica, at the API's level (the replica's
# machines are not real yet, so no SSH): offers from the recorded types and the templates that
# run them, credentials as pspace and the legacy CLIs keep them (never printed), the account
# standing checked before a create, a capacity failure that fails fast and leaves nothing
# billing, kill -9 of `up` while it waits, reconcile from the machines' names (berth-NAME), and
# destroy stopping, waiting for off, deleting, and removing berth's key script.
source "$(dirname "$0")/lib.sh"
: "${BERTH_PAPERSPACE_REPLICA:?set BERTH_PAPERSPACE_REPLICA}"
DATA=${BERTH_SHARED:-$(cd "$(dirname "$0")/../../.." && pwd)/shared}/paperspace/data
[ -f "$DATA/machine_types.csv" ] || die "the recorded Paperspace data is missing at $DATA"
export HOME=$T/home XDG_DATA_HOME=$T/data XDG_CONFIG_HOME=$T/config
mkdir -p "$HOME"
unset PAPERSPACE_API_KEY || true
"$BERTH_PAPERSPACE_REPLICA" --data "$DATA" --api-key ps-secret-key-123 --boot-seconds 2 > "$T/replica.out" 2>&1 & rpid=$!
trap 'kill $rpid 2>/dev/null || true; cleanup' EXIT
for i in $(seq 1 200); do grep -q "listening on" "$T/replica.out" && break; sleep 0.05; done
port=$(sed -n 's/listening on 127.0.0.1:\([0-9]*\)/\1/p' "$T/replica.out")
[ -n "$port" ] || die "the replica did not start: $(cat "$T/replica.out")"
export PAPERSPACE_API_URL=http://127.0.0.1:$port/v1
ps_api() { curl -sS -X "$1" -H "Authorization: Bearer ps-secret-key-123" -H "Content-Type: application/json" ${3:+--data "$3"} "$PAPERSPACE_API_URL$2"; }
count() { ps_api GET "$1" | python3 -c "import json,sys; print(len(json.load(sys.stdin)['items']))"; }

echo "== credentials: none, then pspace's files, then the legacy config.json"
out=$("$BERTH" offers --provider paperspace 2>&1) && die "offers without a key worked"
expect_in "no Paperspace API key" "$out"; expect_in "pspace login" "$out"
mkdir -p "$HOME/.paperspace"
printf 'version = 1\n[keys]\nother-team = "wrong-key"\nmy-team = "ps-secret-key-123"\n' > "$HOME/.paperspace/credentials.toml"
printf 'team = "my-team"\n' > "$HOME/.paperspace/config.toml"
out=$("$BERTH" offers --provider paperspace 'num_gpus=1 gpu_ram>=16' -o dph+ 2>&1) || die "offers with pspace's key: $out"
echo "$out" | head -5
expect_in "A4000@NY2" "$out"; expect_not_in "P4000" "$out"; expect_not_in "ps-secret-key-123" "$out"
first=$(echo "$out" | sed -n 2p | awk '{print $1}')
[ "$first" = "A4000@NY2" ] || [ "$first" = "A4000@AMS1" ] || [ "$first" = "A4000@CA1" ] || die "not ranked by price: $first first"
rm "$HOME/.paperspace/credentials.toml" "$HOME/.paperspace/config.toml"
echo '{"apiKey": "ps-secret-key-123"}' > "$HOME/.paperspace/config.json"
"$BERTH" --json offers --provider paperspace --limit 500 > "$T/offers.json" || die "offers with the legacy key file"
python3 - "$T/offers.json" <<'PY'
import json, sys
offers = json.load(open(sys.argv[1]))["offers"]
ids = {o["id"] for o in offers}
assert "P4000@NY2" in ids and "C4@AMS1" in ids and "H100@NY2" in ids, sorted(ids)[:10]
assert "H100@AMS1" not in ids and "RTX5000@CA1" not in ids  # regions as recorded
p = next(o for o in offers if o["id"] == "P4000@NY2")
assert p["provider"] == "paperspace" and p["gpu_name"] == "Quadro P4000" and p["num_gpus"] == 1, p
assert abs(p["dph_total"] - (0.51 + 0.0045 + 0.0074)) < 1e-9 and abs(p["session"]["rent"] - 0.5145) < 1e-9, p
print("offers:", len(offers))
PY
echo "PS_KEY=wrong" > /dev/null
PAPERSPACE_API_KEY=wrong-key "$BERTH" offers --provider paperspace > "$T/bad.out" 2>&1 && die "a wrong key worked"
expect_in "UNAUTHORIZED" "$(cat "$T/bad.out")"; expect_not_in "wrong-key" "$(cat "$T/bad.out")"

echo "== an account not in good standing: up refuses before anything is made"
curl -sS -X POST --data '{"standing": false}' "http://127.0.0.1:$port/_replica/faults" > /dev/null
expect_exit 1 "$BERTH" up s1 --provider paperspace --machine-type C4
out=$("$BERTH" up s1 --provider paperspace --machine-type C4 2>&1 || true)
expect_in "not in good standing" "$out"
[ "$(count /machines)" = 0 ] && [ "$(count /startup-scripts)" = 0 ] || die "a refused up left something"
out=$(NO_COLOR=1 "$BERTH" account --provider paperspace 2>&1) || die "account: $out"
expect_in "NOT in good standing" "$out"
"$BERTH" --json account --provider paperspace | python3 -c "
import json,sys; a=json.load(sys.stdin); assert a['standing']['good'] is False and a['provider']=='paperspace', a" \
  || die "account --json does not carry the standing"
curl -sS -X POST --data '{"standing": true}' "http://127.0.0.1:$port/_replica/faults" > /dev/null
"$BERTH" --json account --provider paperspace | python3 -c "
import json,sys; a=json.load(sys.stdin); assert a['standing']['good'] is True, a" || die "standing not good again"
expect_exit 2 "$BERTH" up s1 --provider paperspace --machine-type TPU9
expect_exit 2 "$BERTH" up s1 --provider paperspace --machine-type RTX5000 --region AMS1
expect_exit 2 "$BERTH" up s1 --provider paperspace --machine-type P4000 --template t0nspur5

echo "== no capacity: the create event ends in error, up fails fast and leaves nothing billing"
curl -sS -X POST --data '{"capacity": 1}' "http://127.0.0.1:$port/_replica/faults" > /dev/null
t0=$(date +%s)
out=$("$BERTH" up c1 --provider paperspace --machine-type P4000 --max-hours 2 --timeout 120 2>&1) && die "up without capacity worked"
took=$(( $(date +%s) - t0 ))
echo "$out" | tail -3
expect_in "capacity" "$out"
[ "$took" -lt 60 ] || die "up took ${took}s to notice there was no capacity"
[ "$(count /machines)" = 0 ] || die "the failed machine is still there: $(ps_api GET /machines)"
[ "$(count /startup-scripts)" = 0 ] || die "berth's key script was left: $(ps_api GET /startup-scripts)"
"$BERTH" ls | grep -E "^c1 " | grep -qv running || true

echo "== kill -9 of up while it waits: the next berth ls leaves nothing billing"
"$BERTH" up k1 --provider paperspace --machine-type C4 --timeout 120 > "$T/k1.out" 2>&1 & upid=$!
for i in $(seq 1 100); do [ "$(count /machines)" = 1 ] && break; sleep 0.1; done
[ "$(count /machines)" = 1 ] || die "up k1 never created its machine"
kill -9 $upid; wait $upid 2>/dev/null || true
"$BERTH" ls > "$T/ls.out" 2>&1 || true
cat "$T/ls.out"
[ "$(count /machines)" = 0 ] || die "a killed up left a machine billing: $(ps_api GET /machines)"

faults() { curl -sS -X POST --data "$1" "http://127.0.0.1:$port/_replica/faults" > /dev/null; }
echo "== 429 and 5xx are retried with backoff"
faults '{"next": [429, 503, 500], "match": "GET /v1/os-templates"}'
"$BERTH" offers --provider paperspace 'num_gpus=1' > "$T/retry.out" 2>&1 || die "offers after 429/503/500: $(cat "$T/retry.out")"
expect_in "A4000@NY2" "$(cat "$T/retry.out")"
faults '{}'

echo "== kill -9 of up while the create request is in flight: the machine made anyway is found"
faults '{"delay_ms": 3000, "match": "POST /v1/machines"}'
"$BERTH" up k2 --provider paperspace --machine-type C4 --timeout 120 > "$T/k2.out" 2>&1 & upid=$!
for i in $(seq 1 100); do [ "$(count /startup-scripts)" = 1 ] && break; sleep 0.1; done
[ "$(count /startup-scripts)" = 1 ] || die "up k2 never made its key script"
sleep 0.5; kill -9 $upid; wait $upid 2>/dev/null || true
sleep 3.5; faults '{}'
[ "$(count /machines)" = 1 ] || die "the delayed create did not make the machine: $(ps_api GET /machines)"
"$BERTH" ls > "$T/ls2.out" 2>&1 || true
cat "$T/ls2.out"
[ "$(count /machines)" = 0 ] || die "a killed up left a machine billing: $(ps_api GET /machines)"
[ "$(count /startup-scripts)" = 0 ] || die "a killed up left its key script: $(ps_api GET /startup-scripts)"

echo "== a lost create answer (502 after the work): found by name, one machine; then kill -9"
faults '{"after": [502], "match": "POST /v1/machines"}'
"$BERTH" up k3 --provider paperspace --machine-type C4 --timeout 120 > "$T/k3.out" 2>&1 & upid=$!
for i in $(seq 1 100); do [ "$(count /machines)" -ge 1 ] && break; sleep 0.1; done
sleep 3 # time for a second create, were the lookup missing
[ "$(count /machines)" = 1 ] || die "a lost answer made $(count /machines) machines"
kill -9 $upid; wait $upid 2>/dev/null || true
"$BERTH" ls > /dev/null 2>&1 || true
[ "$(count /machines)" = 0 ] && [ "$(count /startup-scripts)" = 0 ] || die "k3 left something: $(ps_api GET /machines)"

echo "== reconcile from the names, then destroy: stop, wait for off, delete"
ps_api POST /machines '{"name":"berth-ghost","machineType":"C4","templateId":"t0nspur5","diskSize":50,"region":"NY2"}' > /dev/null
ps_api POST /machines '{"name":"not-berths","machineType":"C4","templateId":"t0nspur5","diskSize":50,"region":"NY2"}' > /dev/null
sleep 2.5
out=$("$BERTH" ls --reconcile --provider paperspace 2>&1); echo "$out"
expect_in "recovered 'ghost' from paperspace" "$out"
expect_not_in "not-berths" "$out"
"$BERTH" destroy -y --force ghost > /dev/null 2>&1 || die "destroy ghost failed"
[ "$(count '/machines?name=berth-ghost')" = 0 ] || die "ghost was not deleted"
[ "$(count /machines)" = 1 ] || die "destroy touched a machine that is not berth's"
bill=$(curl -sS "http://127.0.0.1:$port/_replica/bill")
echo "bill: $bill"
echo "paperspace api: all checks passed"
