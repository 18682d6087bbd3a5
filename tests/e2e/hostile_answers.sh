#!/usr/bin/env bash
# Hostile input, as an attacker or a broken server would send it: a few thousand generated
# queries (long, nested, non-UTF-8, every operator), and API answers of the wrong shape from
# the replica for every call berth makes (search, instance, list, account, keys, rental,
# destroy), plus a server that trickles one byte a second. berth must never crash (no exit
# at or above 128, no "internal error"), never hang past its deadline, say one line, and
# leave no instance billing.
source "$(dirname "$0")/lib.sh"
export HOME=$T/home XDG_DATA_HOME=$T/data XDG_CONFIG_HOME=$T/config
mkdir -p "$HOME"
start_replica
trap 'kill $replica_pid 2>/dev/null; cleanup' EXIT

echo "== fuzz: generated queries through the parser (berth offers --provider local)"
python3 - "$BERTH" <<'PY'
import random, subprocess, sys, time
berth = sys.argv[1]
rnd = random.Random(20261201)
fields = ["num_gpus", "gpu_ram", "gpu_name", "reliability", "dph", "driver_version", "id",
          "cuda_vers", "geolocation", "inet_down", "verified", "bogus_field", "gpu_total_ram"]
ops = ["=", "==", "!=", ">", ">=", "<", "<=", " in ", " notin ", " not in ", " eq ", "=>", "><", ""]
vals = ["1", "16", "RTX_4090", "[1,2,3]", "\"a b\"", "true", "None", "*", "?", "535.86.05",
        "-1", "1e308", "nan", "[", "]", "[]", "\"", "", "x" * 300]
def junk():
    return bytes(rnd.randrange(1, 256) for _ in range(rnd.randrange(1, 40)))
queries = []
for _ in range(2400):
    parts = []
    for _ in range(rnd.randrange(1, 6)):
        parts.append(rnd.choice(fields) + rnd.choice(ops) + rnd.choice(vals))
    q = " ".join(parts).encode()
    r = rnd.random()
    if r < 0.1: q += junk()
    elif r < 0.15: q = junk()
    elif r < 0.2: q = q.replace(b" ", b"  " * rnd.randrange(1, 50))
    queries.append(q)
queries += [b"gpu_name=" + b"A" * 28000, b"id in [" + b",".join(b"%d" % i for i in range(3000)) + b"]",
            b"[" * 5000 + b"]" * 5000, b"num_gpus=\xff\xfe", b"num_gpus" + b"=" * 10000 + b"1",
            b"a=1 " * 2000, b"\"" * 9999]
crashes = hangs = 0
worst = 0.0
counts = {}
for q in queries:
    t0 = time.monotonic()
    try:
        p = subprocess.run([berth, "offers", "--provider", "local", "--", q], capture_output=True, timeout=10)
    except subprocess.TimeoutExpired:
        hangs += 1; print("HANG:", q[:80]); continue
    worst = max(worst, time.monotonic() - t0)
    counts[p.returncode] = counts.get(p.returncode, 0) + 1
    err = p.stderr.decode("utf-8", "replace")
    if p.returncode < 0 or p.returncode >= 128 or "internal error" in err:
        crashes += 1; print("CRASH:", p.returncode, q[:80], err[:200])
    elif p.returncode != 0 and err.count("berth: error:") != 1:
        crashes += 1; print("NOT ONE LINE:", q[:80], err[:300])
print(f"{len(queries)} queries: exit codes {dict(sorted(counts.items()))}, {crashes} crashes, "
      f"{hangs} hangs, slowest {worst:.2f} s")
sys.exit(1 if crashes or hangs else 0)
PY

echo "== hostile answers for every call"
OFFER=$(api POST /api/v0/bundles/ '{"limit":1,"rentable":{"eq":true},"rented":{"eq":false},"verified":{"eq":true}}' | python3 -c "import json,sys; print(json.load(sys.stdin)['offers'][0]['id'])")
make_h1() { # a machine berth knows: made through the API with berth's label, recovered
  "$BERTH" --json status h1 >/dev/null 2>&1 && return 0
  faults '{}'
  api PUT "/api/v0/asks/$OFFER/" '{"client_id":"me","image":"x","disk":10,"label":"berth:h1","runtype":"ssh"}' >/dev/null
  "$BERTH" ls --reconcile --provider vast >/dev/null 2>&1 || die "reconcile failed"
  "$BERTH" --json status h1 >/dev/null || die "h1 was not recovered"
}
make_h1

bodies=(
  'not json at all'
  '[]'
  '{}'
  '{"offers": [1, "x", null]}'
  '{"offers": [{"id": "123", "is_bid": null, "num_gpus": "x", "gpu_name": 5, "dph_base": "cheap"}]}'
  '{"offers": {"id": 1}}'
  '{"instances": [1, 2]}'
  '{"instances": {"id": "abc", "actual_status": 5, "ssh_port": "lots", "public_ipaddr": ["-oProxyCommand=x"]}}'
  '{"instances": [{"id": null, "label": 7}], "next_token": {"a": 1}}'
  '{"instances": null, "next_token": "../../x y"}'
  '{"detail": [{"msg": "field required", "loc": ["body"]}]}'
  '{"msg": 5, "error": ["x"]}'
  '{"credit": "lots"}'
  '{"success": true, "new_contract": "abc"}'
  '{"success": "yes", "new_contract": 1.5e300}'
  "{\"msg\": \"$(head -c 3000000 /dev/zero | tr '\0' 'A')\"}"
  "$(python3 -c "print('['*100000 + ']'*100000)")"
  "$(printf '{"offers": [{"gpu_name": "\xff\xfe\xfd", "id": 1}]}')"
)
# The calls that reach each endpoint.
declare -A calls=(
  ["POST /api/v0/bundles/"]="offers --provider vast|offers|up h2 --provider vast --timeout 5 --query num_gpus=1"
  ["GET /api/v0/instances/"]="ls|status h1|destroy -y --force h1"
  ["GET /api/v1/instances/"]="ls --reconcile --provider vast|account"
  ["GET /api/v0/users/current/"]="account|up h2 --provider vast --timeout 5 --offer $OFFER"
  ["GET /api/v0/ssh/"]="up h2 --provider vast --timeout 5 --offer $OFFER"
  ["PUT /api/v0/asks/"]="up h2 --provider vast --timeout 5 --offer $OFFER"
  ["DELETE /api/v0/instances/"]="destroy -y --force h1"
)
bad=0 runs=0
for m in "${!calls[@]}"; do
  IFS='|' read -r -a cs <<<"${calls[$m]}"
  for b in "${bodies[@]}"; do
    for c in "${cs[@]}"; do
      make_h1
      payload=$(python3 -c 'import json,sys; print(json.dumps({"body":[sys.argv[1]]*3,"match":sys.argv[2]}))' "$b" "$m" 2>/dev/null) || continue
      curl -sS -X POST --data-binary @- "$VAST_URL/_replica/faults" <<<"$payload" >/dev/null
      code=0
      # shellcheck disable=SC2086
      timeout 90 "$BERTH" $c > "$T/o" 2> "$T/e" < /dev/null || code=$?
      runs=$((runs + 1))
      if [ "$code" -ge 124 ] || grep -q "internal error" "$T/e"; then
        bad=$((bad + 1)); echo "BAD: $c with '${b:0:60}' on $m: exit $code: $(head -c 300 "$T/e")"
      fi
      [ "$(grep -c "berth: error:" "$T/e")" -le 1 ] || { bad=$((bad + 1)); echo "MORE THAN ONE ERROR LINE: $c: $(head -c 300 "$T/e")"; }
      faults '{}'
      "$BERTH" destroy -y --force h2 >/dev/null 2>&1 || true
    done
  done
done
faults '{}'
echo "$runs runs of berth against hostile answers: $bad crashes or hangs"
[ "$bad" = 0 ] || die "berth crashed or hung on hostile answers"
# Whatever the hostile rentals made, berth undid, or one `ls` does.
"$BERTH" ls >/dev/null 2>&1 || true
"$BERTH" destroy -y --force h1 >/dev/null 2>&1 || true
left=$(api GET /api/v0/instances/ | python3 -c "import json,sys; print(len([i for i in json.load(sys.stdin)['instances'] if (i.get('label') or '').startswith('berth:')]))")
echo "berth-labelled instances left: $left"
[ "$left" = 0 ] || die "hostile answers left $left instance(s) billing: $(api GET /api/v0/instances/)"

echo "== a server that trickles one byte a second is cut at the deadline"
faults '{"trickle_ms":1000,"match":"POST /api/v0/bundles/"}'
t0=$(date +%s)
code=0; BERTH_HTTP_DEADLINE_S=3 timeout 60 "$BERTH" offers --provider vast > "$T/o" 2> "$T/e" || code=$?
took=$(( $(date +%s) - t0 ))
faults '{}'
echo "trickling server: exit $code after ${took}s (deadline 3 s; 189 s before the deadline existed)"
[ "$code" = 1 ] || die "expected exit 1, got $code: $(cat "$T/e")"
expect_in "within 3 s" "$(cat "$T/e")"
[ "$took" -lt 30 ] || die "the deadline did not hold: ${took}s"
echo "hostile_answers: all checks passed"
