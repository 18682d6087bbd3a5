#!/usr/bin/env bash
# The Vast.ai replica's account side: every request the official CLI sent in the wire capture
# is accepted as sent and answered in the shape the CLI needs; the instance state machine; the
# per-second billing meters (rent while running, storage while the instance exists).
source "$(dirname "$0")/lib.sh"
: "${BERTH_VAST_REPLICA:?set BERTH_VAST_REPLICA}"
DATA=${BERTH_SHARED:-$(cd "$(dirname "$0")/../../.." && pwd)/shared}/vastai/data
[ -f "$DATA/wire_capture_legacy_vast_py_2024-12.jsonl" ] || die "the recorded Vast.ai data is missing at $DATA"
"$BERTH_VAST_REPLICA" --offers "$DATA/offers_snapshot_2024-11-05.json" --api-key KEY123 --boot-seconds 1 \
  > "$T/replica.out" 2>&1 & rpid=$!
trap 'kill $rpid 2>/dev/null; cleanup' EXIT
for i in $(seq 1 100); do grep -q "listening on" "$T/replica.out" && break; sleep 0.05; done
port=$(sed -n 's/listening on 127.0.0.1:\([0-9]*\)/\1/p' "$T/replica.out")
[ -n "$port" ] || die "the replica did not start"

python3 - "$DATA/wire_capture_legacy_vast_py_2024-12.jsonl" "$port" <<'PY'
import json, sys, time, urllib.request, urllib.error
port = sys.argv[2]
def call(method, path, body=None, auth=None, ctype=None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body.encode() if body else None, method=method)
    if auth: req.add_header("Authorization", auth)
    if ctype: req.add_header("Content-Type", ctype)
    try:
        with urllib.request.urlopen(req) as r:
            assert r.headers["Content-Type"] == "application/json", (path, r.headers["Content-Type"])
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)

ids = {}   # the capture's instance and key ids -> the replica's
rented = set()
lines = [json.loads(l) for l in open(sys.argv[1])]
for r in lines:
    path = r["path"]
    for old, new in ids.items():
        path = path.replace(f"/{old}/", f"/{new}/")
    body = r["body"]
    for old, new in ids.items():
        body = body.replace(str(old), str(new))
    if "/asks/" in path and r["method"] == "PUT":
        offer_id = int(path.split("/asks/")[1].split("/")[0])
        if offer_id in rented:
            # The capture rents one offer twice; on Vast the second rental fails while the
            # first instance lives, and so it does here. Then it goes to a free offer.
            status, out = call(r["method"], path, body or None, r["auth"], r["ctype"])
            assert status == 404 and out["error"] == "invalid_args" and "no_such_ask" in out["msg"] \
                and out["ask_id"] == offer_id, (status, out)
            _, found = call("POST", "/api/v0/bundles/?api_key=KEY123", json.dumps({"limit": 20}),
                            "Bearer KEY123", "application/json")
            free = next(o["id"] for o in found["offers"] if o["id"] not in rented)
            path = path.replace(f"/asks/{offer_id}/", f"/asks/{free}/")
            offer_id = free
        rented.add(offer_id)
    status, out = call(r["method"], path, body or None, r["auth"], r["ctype"])
    assert 200 <= status < 300, (r["method"], r["path"], status, out)
    p = r["path"]
    if "/asks/" in p:                               # create
        assert out["success"] is True and isinstance(out["new_contract"], int), out
        ids.setdefault(13518557, out["new_contract"])
        if out["new_contract"] != ids[13518557]: ids.setdefault(13518558, out["new_contract"])
    elif p.startswith("/api/v0/instances?"):        # list: what the CLI indexes must be there
        for row in out["instances"]:
            assert isinstance(row["start_date"], float) and isinstance(row["extra_env"], list), row
            assert all(isinstance(kv, list) and len(kv) == 2 for kv in row["extra_env"])
            for k in ("ssh_host", "ssh_port", "public_ipaddr", "image_runtype", "actual_status"): assert k in row
            # ports are known from create: the proxy port is there while the instance loads
            assert isinstance(row["ssh_port"], int) and row["ssh_port"] > 0, row["ssh_port"]
    elif "/instances/" in p and r["method"] == "GET":
        assert isinstance(out["instances"], dict), out
    elif "/users/current" in p:
        assert "api_key" in out and isinstance(out["credit"], float), out   # the legacy CLI pops api_key
    elif p.startswith("/api/v0/ssh/") and r["method"] == "POST":
        ids[5] = out["key"]["id"]
    elif "invoices" in p:
        assert isinstance(out["invoices"], list), out
    if r["method"] == "DELETE" and p.startswith("/api/v0/instances/13518557/?"):
        # later lines still name 13518557: point them at the second instance
        ids[13518557] = ids.get(13518558, ids[13518557])
print("ok: all", len(lines), "recorded requests accepted")

# The state machine, and the meters.
offer = 13489095
status, out = call("PUT", f"/api/v0/asks/{offer}/", json.dumps({"image": "x", "disk": 40.0}), "Bearer KEY123", "application/json")
iid = out["new_contract"]
_, out = call("GET", f"/api/v0/instances/{iid}/?api_key=KEY123")
assert out["instances"]["actual_status"] == "loading", out["instances"]["actual_status"]
time.sleep(1.2)
_, out = call("GET", f"/api/v0/instances/{iid}/?api_key=KEY123")
assert out["instances"]["actual_status"] == "running"
t0 = time.time(); time.sleep(2.0)
call("PUT", f"/api/v0/instances/{iid}/", '{"state": "stopped"}', "Bearer KEY123", "application/json")
t1 = time.time(); time.sleep(1.0)
_, inv = call("GET", "/api/v0/users/me/invoices?owner=me&api_key=KEY123")
row = [c for c in inv["invoices"] if c["instance_id"] == iid][0]
o = [x for x in json.load(open(sys.argv[1].replace("wire_capture_legacy_vast_py_2024-12.jsonl", "offers_snapshot_2024-11-05.json"))) if x["id"] == offer][0]
rent_expected = o["dph_base"] / 3600 * (t1 - t0 + 0.2)      # ran ~0.2 s before t0 too
assert abs(row["rent"] - rent_expected) / rent_expected < 0.25, (row, rent_expected)
storage_rate = o["storage_cost"] * 40 / 720 / 3600
assert row["storage"] > storage_rate * 3.0, row                # storage accrued while stopped too
_, out = call("GET", f"/api/v0/instances/{iid}/?api_key=KEY123")
assert out["instances"]["actual_status"] == "stopped"
call("DELETE", f"/api/v0/instances/{iid}/", "{}", "Bearer KEY123", "application/json")
_, out = call("GET", f"/api/v0/instances/{iid}/?api_key=KEY123")
assert out["instances"] is None
status, out = call("PUT", "/api/v0/asks/1/", "{}", "Bearer KEY123", "application/json")
assert status == 404 and out["success"] is False
status, out = call("GET", "/api/v0/instances/?api_key=wrong")
assert status == 401 and out["error"] == "auth_error"
print("ok: state machine, meters, errors")
PY
echo "== the machine's watcher stops its instance through the API at max-hours: curl, or python3 alone"
PY3=/usr/bin/python3; [ -x "$PY3" ] || PY3=$(command -v python3) # not a pyenv shim: it needs bash on PATH
mkdir -p "$T/pyonly"; ln -s "$PY3" "$T/pyonly/python3"
for client in curl python3; do
  iid=$(curl -sS -X PUT -H "Authorization: Bearer KEY123" -H "Content-Type: application/json" \
    --data '{"image":"x","disk":10,"label":"berth:wd"}' "http://127.0.0.1:$port/api/v0/asks/13489095/" |
    python3 -c "import json,sys; print(json.load(sys.stdin)['new_contract'])")
  # Where berth's onstart keeps the container's environment: ~/.berth/vast.env; the watcher's
  # setting (a deadline now, idle off): ~/.berth/idle.json.
  mkdir -p "$T/wdhome/.berth"
  printf 'CONTAINER_ID=%s\nCONTAINER_API_KEY=KEY123\n' "$iid" > "$T/wdhome/.berth/vast.env"
  echo "{\"idle_seconds\": 0, \"deadline\": $(date +%s)}" > "$T/wdhome/.berth/idle.json"
  path=$PATH; [ "$client" = python3 ] && path=$T/pyonly
  env -u CONTAINER_ID -u CONTAINER_API_KEY HOME="$T/wdhome" PATH="$path" "$BERTH" agent watch --stop provider \
    --provider vast --api-url "http://127.0.0.1:$port" --label berth:wd 2> "$T/wd.log" & wpid=$!
  for i in $(seq 1 100); do
    st=$(curl -sS -H "Authorization: Bearer KEY123" "http://127.0.0.1:$port/api/v0/instances/$iid/" |
      python3 -c "import json,sys; print(json.load(sys.stdin)['instances']['intended_status'])")
    [ "$st" = stopped ] && break; sleep 0.1
  done
  kill $wpid; wait $wpid 2>/dev/null || true
  [ "$st" = stopped ] || die "the watcher ($client) did not stop instance $iid: $st; $(cat "$T/wd.log")"
  grep -q "stopping: max-hours reached" "$T/wd.log" || die "watcher log: $(cat "$T/wd.log")"
  ! grep -q KEY123 "$T/wd.log" || die "the watcher logged the key"
  label=$(curl -sS -H "Authorization: Bearer KEY123" "http://127.0.0.1:$port/api/v0/instances/$iid/" |
    python3 -c "import json,sys; print(json.load(sys.stdin)['instances']['label'])")
  [ "$label" = "berth:wd | max-hours reached (the hard limit set at up)" ] || die "the reason is not in the label: $label"
  grep -q "max-hours reached" "$T/wdhome/.berth/stops.log" || die "the stop is not in the machine's stops.log"
  rm -f "$T/wdhome/.berth/stops.log"
  # Destroyed, the offer is for rent again (a rented one is not: Vast answers 404 no_such_ask).
  curl -sS -X DELETE -H "Authorization: Bearer KEY123" "http://127.0.0.1:$port/api/v0/instances/$iid/" >/dev/null
done
echo "vast replica: all checks passed"
