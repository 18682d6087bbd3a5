#!/usr/bin/env bash
# berth offers against the project's Vast.ai replica serving the real recorded offers: the
# query language's meaning, the one cost model, retries on 429/5xx, bad keys, bad queries, and
# the replica accepting the official CLI's recorded search request as sent.
source "$(dirname "$0")/lib.sh"
: "${BERTH_VAST_REPLICA:?set BERTH_VAST_REPLICA}"
# ../shared sits beside the clone (as in CI); BERTH_SHARED points elsewhere.
DATA=${BERTH_SHARED:-$(cd "$(dirname "$0")/../../.." && pwd)/shared}/vastai/data
[ -f "$DATA/offers_snapshot_2024-11-05.json" ] || die "the recorded Vast.ai data is missing at $DATA (set BERTH_SHARED)"
"$BERTH_VAST_REPLICA" --offers "$DATA/offers_snapshot_2024-11-05.json" --gpu-names "$DATA/gpu_names_unique_2024-11.json" \
  --api-key KEY123 > "$T/replica.out" 2>&1 & rpid=$!
trap 'kill $rpid 2>/dev/null; cleanup' EXIT
for i in $(seq 1 100); do grep -q "listening on" "$T/replica.out" && break; sleep 0.05; done
port=$(sed -n 's/listening on 127.0.0.1:\([0-9]*\)/\1/p' "$T/replica.out")
[ -n "$port" ] || die "the replica did not start: $(cat "$T/replica.out")"
export VAST_URL=http://127.0.0.1:$port VAST_API_KEY=KEY123 HOME=$T/home XDG_CONFIG_HOME=$T/config
mkdir -p "$HOME"

echo "== the query means what the API means: checked against an independent filter of the snapshot"
"$BERTH" --json offers 'num_gpus=1 gpu_ram>=16 reliability>0.98 gpu_name=RTX_3090' -o dph+ --limit 5 \
  --provider vast --hours 8 --disk 40 --download 20 > "$T/o.json"
python3 - "$T/o.json" "$DATA/offers_snapshot_2024-11-05.json" <<'PY'
import json, sys
got = json.load(open(sys.argv[1]))
offers = json.load(open(sys.argv[2]))
def dph(o, alloc): return o["dph_base"] + o["storage_cost"] * alloc / 720
want = [o for o in offers if o["verification"] == "verified" and o["rentable"] and not o["rented"]
        and not o.get("external") and o["num_gpus"] == 1 and o["gpu_ram"] >= 16000
        and o["reliability"] > 0.98 and o["gpu_name"] == "RTX 3090"]
want.sort(key=lambda o: dph(o, 40))
ids = [o["id"] for o in got["offers"]]
assert ids == [o["id"] for o in want[:5]], (ids, [o["id"] for o in want[:5]])
assert got["query"]["gpu_ram"] == {"gte": 16000.0} and got["query"]["limit"] == 5, got["query"]
for g, o in zip(got["offers"], want):
    s = g["session"]
    assert abs(s["rent"] - o["dph_base"] * 8) < 1e-9, s
    assert abs(s["storage"] - o["storage_cost"] * 40 / 720 * 8) < 1e-9, s
    assert abs(s["transfer"] - o["inet_down_cost"] * 20) < 1e-9, s
    assert abs(g["dph_total"] - dph(o, 40)) < 1e-9
print("ok:", ids)
PY

echo "== --explain shows the arithmetic"
id=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['offers'][0]['id'])" "$T/o.json")
out=$("$BERTH" offers --provider vast --explain "$id" --hours 8 --disk 40 --download 20)
expect_in "/GB-month x 40 GB / 720 h x 8 h" "$out"; expect_in "total" "$out"

echo "== 429 and 503 are retried; a bad key and a bad query are one-line errors"
curl -s -X POST "http://127.0.0.1:$port/_replica/faults" -d '{"next":[429,503,502]}' >/dev/null
"$BERTH" --json offers --provider vast --limit 3 > "$T/r.json" 2>"$T/r.err" || die "no recovery from 429/503/502: $(cat "$T/r.err")"
[ "$(grep -c retrying "$T/r.err")" = 3 ] || die "expected three retries: $(cat "$T/r.err")"
VAST_API_KEY=wrong expect_exit 1 "$BERTH" offers --provider vast; expect_in "Invalid user key" "$out"
expect_exit 2 "$BERTH" offers 'gpu_rma>=16' --provider vast; expect_in "did you mean 'gpu_ram'" "$out"
expect_exit 2 "$BERTH" offers 'num_gpus=1 )' --provider vast; expect_in "cannot parse the query at ')'" "$out"
expect_exit 1 env -u VAST_API_KEY "$BERTH" offers --provider vast; expect_in "no Vast.ai API key" "$out"
mkdir -p "$XDG_CONFIG_HOME/vastai"; echo KEY123 > "$XDG_CONFIG_HOME/vastai/vast_api_key"
env -u VAST_API_KEY "$BERTH" offers --provider vast --limit 1 >/dev/null || die "the official CLI's key file was not used"

echo "== the official CLI's recorded search request, replayed as sent"
python3 - "$DATA/wire_capture_legacy_vast_py_2024-12.jsonl" "$port" <<'PY'
import json, sys, urllib.request
for line in open(sys.argv[1]):
    r = json.loads(line)
    if "bundles" not in r["path"]: continue
    req = urllib.request.Request(f"http://127.0.0.1:{sys.argv[2]}{r['path']}", data=r["body"].encode(), method=r["method"])
    if r["auth"]: req.add_header("Authorization", r["auth"])
    if r["ctype"]: req.add_header("Content-Type", r["ctype"])
    with urllib.request.urlopen(req) as resp:
        assert resp.headers["Content-Type"] == "application/json", resp.headers["Content-Type"]
        body = json.load(resp)
        assert 0 < len(body["offers"]) <= 5 and all(o["gpu_name"] == "RTX 3090" for o in body["offers"]), body
print("ok: the recorded search is accepted")
PY
echo "offers: all checks passed"
