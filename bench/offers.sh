#!/usr/bin/env bash
# `berth offers` over 10,000+ offers, whole process, against the replica: berth (parse the query,
# POST, parse the answer, price every offer for the session, rank, print) against the floor of
# `curl` fetching the same answer, and a small Python script doing what a user would script.
# Usage: bash bench/offers.sh [path/to/build]   (needs hyperfine)
set -euo pipefail
BUILD=$(realpath "${1:-$(dirname "$0")/../build}")
DATA=$(realpath "$(dirname "$0")/../../shared/vastai/data")
W=$(mktemp -d /tmp/berth-bench-offers-XXXXXX)
"$BUILD/berth-vast-replica" --offers "$DATA/offers_snapshot_2024-11-05.json" --replicate 16 --api-key k > "$W/r.out" 2>&1 & rp=$!
trap 'kill $rp; rm -rf "$W"' EXIT
for i in $(seq 1 100); do grep -q listening "$W/r.out" && break; sleep 0.05; done
port=$(sed -n 's/listening on 127.0.0.1:\([0-9]*\)/\1/p' "$W/r.out")
export VAST_URL=http://127.0.0.1:$port VAST_API_KEY=k HOME=$W
body='{"verified":{"eq":true},"external":{"eq":false},"rentable":{"eq":true},"rented":{"eq":false},"order":[["dph_total","asc"]],"type":"on-demand","limit":20000,"allocated_storage":10}'
echo "$body" > "$W/body.json"
n=$(curl -s -X POST -H "Authorization: Bearer k" "$VAST_URL/api/v0/bundles/" -d "$body" | python3 -c "import json,sys; print(len(json.load(sys.stdin)['offers']))")
cat > "$W/script.py" <<PY
import json, urllib.request
req = urllib.request.Request("$VAST_URL/api/v0/bundles/", data=b'$body', method="POST", headers={"Authorization": "Bearer k"})
offers = json.load(urllib.request.urlopen(req))["offers"]
for o in offers: o["session"] = o["dph_base"] * 8 + o["storage_cost"] * 10 / 720 * 8
for o in sorted(offers, key=lambda o: o["session"]): print(o["id"], o["gpu_name"], round(o["session"], 3))
PY
hyperfine -N --warmup 2 --runs 10 --export-json "$W/o.json" \
  -n "berth offers (table)" "$BUILD/berth offers --provider vast --limit 20000 -o dph+ --hours 8 --disk 10" \
  -n "berth offers --json" "$BUILD/berth --json offers --provider vast --limit 20000 -o dph+ --hours 8 --disk 10" \
  -n "curl (fetch only, the floor)" "curl -s -o /dev/null -X POST -H Authorization:Bearer\ k $VAST_URL/api/v0/bundles/ --data-binary @$W/body.json" \
  -n "python script (fetch, price, sort, print)" "python3 $W/script.py" >/dev/null
python3 - "$W/o.json" "$n" <<'PY'
import json, sys
res = json.load(open(sys.argv[1]))["results"]
print(f"{sys.argv[2]} offers per answer")
base = res[0]["mean"]
for r in res:
    print(f"  {r['command']:42s} mean {r['mean']*1e3:8.1f} ms   berth table / this {base/r['mean']:.2f}x")
PY
