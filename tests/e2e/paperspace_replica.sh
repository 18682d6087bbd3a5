#!/usr/bin/env bash
# The Paperspace API v1 replica on its own, as the API is specified (SPEC §4.1, §8): auth and
# its error shape, the session and the account standing, templates and their machine types,
# machines moving provisioning -> starting -> ready and stopping -> off with events, the
# conflicts ("This machine is currently starting."), delete only when off, pagination
# (after/limit/hasMore/nextPage), both spellings of regions and machine types, startup scripts,
# public IPs, capacity failure, faults, and the bill at the recorded rates.
source "$(dirname "$0")/lib.sh"
: "${BERTH_PAPERSPACE_REPLICA:?set BERTH_PAPERSPACE_REPLICA}"
DATA=${BERTH_SHARED:-$(cd "$(dirname "$0")/../../.." && pwd)/shared}/paperspace/data
[ -f "$DATA/machine_types.csv" ] || die "the recorded Paperspace data is missing at $DATA"
"$BERTH_PAPERSPACE_REPLICA" --data "$DATA" --api-key PS-KEY --boot-seconds 1 > "$T/replica.out" 2>&1 & rpid=$!
trap 'kill $rpid 2>/dev/null || true; cleanup' EXIT
for i in $(seq 1 200); do grep -q "listening on" "$T/replica.out" && break; sleep 0.05; done
port=$(sed -n 's/listening on 127.0.0.1:\([0-9]*\)/\1/p' "$T/replica.out")
[ -n "$port" ] || die "the replica did not start: $(cat "$T/replica.out")"

python3 - "$port" <<'PY'
import json, sys, time, urllib.request, urllib.error
base = f"http://127.0.0.1:{sys.argv[1]}"
def call(method, path, body=None, key="PS-KEY"):
    data = None if body is None else json.dumps(body).encode()
    h = {"Content-Type": "application/json"}
    if key: h["Authorization"] = f"Bearer {key}"
    req = urllib.request.Request(base + path, data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")
def ok(method, path, body=None):
    s, out = call(method, path, body)
    assert s == 200, (method, path, s, out)
    return out
def err(status, code, method, path, body=None, key="PS-KEY", text=None):
    s, out = call(method, path, body, key)
    assert s == status and out["code"] == code and set(out) == {"code", "message"}, (path, s, out)
    if text: assert text in out["message"], out
    return out

# Auth: 401 UNAUTHORIZED with {code, message}; /auth/session answers null for a bad key.
err(401, "UNAUTHORIZED", "GET", "/v1/machines", key="wrong")
err(401, "UNAUTHORIZED", "GET", "/v1/machines", key=None)
assert call("GET", "/v1/auth/session", key="wrong") == (200, None)
sess = ok("GET", "/v1/auth/session")
assert sess["team"]["namespace"] and sess["user"]["email"], sess
st = ok("GET", "/v1/billing/account-standing")
assert st == {"hasPaymentMethod": True, "isAdminLocked": False, "isInGoodStanding": True, "messages": []}, st
err(404, "NOT_FOUND", "GET", "/v1/no-such-thing")

# Templates: paginated; Windows and legacy-only ids run nothing; the CPU template CPU types.
t1 = ok("GET", "/v1/os-templates?limit=5")
assert len(t1["items"]) == 5 and t1["hasMore"] and t1["nextPage"] == t1["items"][-1]["id"], t1
seen, after = [], None
while True:
    p = ok("GET", "/v1/os-templates?limit=7" + (f"&after={after}" if after else ""))
    seen += p["items"]
    if not p["hasMore"]: assert "nextPage" not in p; break
    after = p["nextPage"]
assert len(seen) == 22 and len({t["id"] for t in seen}) == 22, len(seen)
cpu = next(t for t in seen if t["id"] == "t0nspur5")
labels = {a["machineTypeLabel"] for a in cpu["availableMachineTypes"]}
assert "C4" in labels and "P4000" not in labels, labels
gpu = next(t for t in seen if t["id"] == "t17d1a6i")
assert "P4000" in {a["machineTypeLabel"] for a in gpu["availableMachineTypes"]}
err(400, "BAD_REQUEST", "GET", "/v1/os-templates?limit=0")
err(400, "BAD_REQUEST", "GET", "/v1/os-templates?limit=121")
err(400, "BAD_REQUEST", "GET", "/v1/os-templates?after=nonsense")

# Create: every required field, real types, regions and templates.
base_body = {"name": "berth-m1", "machineType": "p4000", "templateId": "t17d1a6i", "diskSize": 50,
             "region": "East Coast (NY2)", "autoShutdownEnabled": "true", "autoShutdownTimeout": "6"}
for k in ["name", "machineType", "templateId", "diskSize", "region"]:
    b = dict(base_body); del b[k]
    err(400, "BAD_REQUEST", "POST", "/v1/machines", b, text=k)
err(400, "BAD_REQUEST", "POST", "/v1/machines", {**base_body, "machineType": "TPU9000"})
err(400, "BAD_REQUEST", "POST", "/v1/machines", {**base_body, "region": "Mars (MRS1)"})
err(400, "BAD_REQUEST", "POST", "/v1/machines", {**base_body, "machineType": "RTX5000", "region": "AMS1"}, text="not available")
err(400, "BAD_REQUEST", "POST", "/v1/machines", {**base_body, "templateId": "t0nspur5"}, text="cannot run")
err(400, "BAD_REQUEST", "POST", "/v1/machines", {**base_body, "diskSize": 10})
created = ok("POST", "/v1/machines", base_body)
m, ev = created["data"], created["event"]
assert m["state"] == "provisioning" and m["machineType"] == "P4000" and m["region"] == "NY2", m
assert m["autoShutdownEnabled"] is True and m["autoShutdownTimeout"] == 6, m
assert m["accelerators"] == [{"count": 1, "memory": 8, "name": "Quadro P4000"}], m
assert m["ram"] == 30 * 2**30 and m["cpus"] == 8 and m["usageRate"] == 0.51, m
assert ev["name"] == "create" and ev["state"] in ("new", "in progress") and ev["machineId"] == m["id"], ev
assert m["dtCreated"].endswith("Z") and "T" in m["dtCreated"]
mid = m["id"]
# Starting: a start conflicts with the real message.
time.sleep(0.6)
assert ok("GET", f"/v1/machines/{mid}")["state"] == "starting"
err(409, "CONFLICT", "PATCH", f"/v1/machines/{mid}/start", {}, text="This machine is currently starting.")
err(409, "CONFLICT", "DELETE", f"/v1/machines/{mid}", text="must be off")
time.sleep(0.6)
m = ok("GET", f"/v1/machines/{mid}")
assert m["state"] == "ready" and m["publicIp"], m
assert ok("GET", f"/v1/machine-events/{ev['id']}")["state"] == "done"
# Stop: stopping -> off; the dynamic address goes; start gives it back.
stop = ok("PATCH", f"/v1/machines/{mid}/stop", {})
assert stop["data"]["state"] == "stopping" and stop["event"]["name"] == "stop"
time.sleep(0.7)
m = ok("GET", f"/v1/machines/{mid}")
assert m["state"] == "off" and m["publicIp"] is None, m
evs = ok("GET", f"/v1/machine-events?machineId={mid}")["items"]
assert [e["name"] for e in evs] == ["stop", "create"], evs
# A second machine, older spelling; the list pages and filters.
m2 = ok("POST", "/v1/machines", {**base_body, "name": "berth-m2", "machineType": "C4", "templateId": "t0nspur5", "region": "NY2"})["data"]
l1 = ok("GET", "/v1/machines?limit=1")
assert len(l1["items"]) == 1 and l1["hasMore"], l1
l2 = ok("GET", f"/v1/machines?limit=1&after={l1['nextPage']}")
assert [x["id"] for x in l1["items"] + l2["items"]] == [mid, m2["id"]] and not l2["hasMore"], (l1, l2)
assert [x["name"] for x in ok("GET", "/v1/machines?name=berth-m2")["items"]] == ["berth-m2"]
upd = ok("PUT", f"/v1/machines/{mid}", {"autoShutdownTimeout": 2})
assert upd["autoShutdownTimeout"] == 2
# Startup scripts.
s = ok("POST", "/v1/startup-scripts", {"name": "berth-key", "script": "#!/bin/bash\necho hi", "isRunOnce": True})
assert s["isRunOnce"] is True and s["assignedMachineIds"] == [] and s["isEnabled"] is True, s
a = ok("POST", f"/v1/startup-scripts/{s['id']}/assign", {"machineId": mid})
assert a["assignedMachineIds"] == [mid], a
u = ok("POST", f"/v1/startup-scripts/{s['id']}/unassign", {"machineId": mid})
assert u["assignedMachineIds"] == [], u
assert [x["id"] for x in ok("GET", "/v1/startup-scripts")["items"]] == [s["id"]]
ok("DELETE", f"/v1/startup-scripts/{s['id']}")
err(404, "NOT_FOUND", "GET", f"/v1/startup-scripts/{s['id']}")
# Public IPs: claimed, assigned, released.
ip = ok("POST", "/v1/public-ips", {"region": "NY2"})
assert ip["assignedMachineId"] is None
assert ok("PUT", f"/v1/public-ips/{ip['ip']}", {"machineId": mid})["assignedMachineId"] == mid
assert ok("GET", f"/v1/machines/{mid}")["publicIp"] == ip["ip"]
ok("DELETE", f"/v1/public-ips/{ip['ip']}")
assert ok("GET", "/v1/public-ips")["items"] == []
# Delete when off: gone afterwards.
ok("DELETE", f"/v1/machines/{mid}")
err(404, "NOT_FOUND", "GET", f"/v1/machines/{mid}")
# Capacity: the create event ends in error and the machine falls back to off.
ok("POST", "/_replica/faults", {"capacity": 1})
c = ok("POST", "/v1/machines", {**base_body, "name": "berth-m3"})
time.sleep(0.7)
e = ok("GET", f"/v1/machine-events/{c['event']['id']}")
assert e["state"] == "error" and "capacity" in e["error"], e
assert ok("GET", f"/v1/machines/{c['data']['id']}")["state"] == "off"
# Standing: a create is refused while the account is not in good standing.
ok("POST", "/_replica/faults", {"standing": False})
assert ok("GET", "/v1/billing/account-standing")["isInGoodStanding"] is False
err(412, "PRECONDITION_FAILED", "POST", "/v1/machines", {**base_body, "name": "berth-m4"})
ok("POST", "/_replica/faults", {"standing": True})
# Faults: 429 with the API's shape; a handled request whose answer is lost.
ok("POST", "/_replica/faults", {"next": [429]})
err(429, "TOO_MANY_REQUESTS", "GET", "/v1/machines")
ok("POST", "/_replica/faults", {"after": [502], "match": "POST /v1/machines"})
s, _ = call("POST", "/v1/machines", {**base_body, "name": "berth-lost"})
assert s == 502
assert [x["name"] for x in ok("GET", "/v1/machines?name=berth-lost")["items"]] == ["berth-lost"]
# The bill: a P4000 ran about a second, its 50 GB disk a little longer.
bill = json.loads(urllib.request.urlopen(base + "/_replica/bill").read())
assert 0 < bill["items"][mid] < 0.01 and bill["total"] >= bill["items"][mid], bill
print("paperspace replica: all checks passed")
PY
