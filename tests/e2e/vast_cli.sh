#!/usr/bin/env bash
# The judge of the Vast.ai replica: Vast.ai's own official client (github vast-ai/vast-cli, run
# from its source tree: the `vastai` package, and its deprecated root vast.py where the package
# cannot run a command) against the replica, in both modes, as a renter uses it. Every command
# must print what it prints against Vast.ai (the client exits 0 on API errors: judged by output).
#
# Needs VAST_CLI_SRC=DIR (a checkout of vast-ai/vast-cli) and Debian's python3-requests,
# python3-urllib3, python3-dateutil, python3-rich, python3-argcomplete; skips otherwise.
source "$(dirname "$0")/lib.sh"
: "${BERTH_VAST_REPLICA:?set BERTH_VAST_REPLICA}"
[ -n "${VAST_CLI_SRC:-}" ] || skip "VAST_CLI_SRC is not set: get the official client with 'git clone https://github.com/vast-ai/vast-cli' and run with VAST_CLI_SRC=\$PWD/vast-cli (see README)"
[ -f "$VAST_CLI_SRC/vastai/cli/main.py" ] && [ -f "$VAST_CLI_SRC/vast.py" ] || skip "VAST_CLI_SRC=$VAST_CLI_SRC is not a vast-cli checkout"
PY=/usr/bin/python3
"$PY" -c "import requests, urllib3, dateutil, rich, argcomplete" 2>/dev/null \
  || skip "the official client needs python3-requests python3-urllib3 python3-dateutil python3-rich python3-argcomplete"
DATA=${BERTH_SHARED:-$(cd "$(dirname "$0")/../../.." && pwd)/shared}/vastai/data
[ -f "$DATA/offers_snapshot_2024-11-05.json" ] || die "the recorded Vast.ai data is missing at $DATA"

export HOME=$T/home VAST_API_KEY=KEY-cli VASTAI_NO_UPDATE_CHECK=1 CI=1
mkdir -p "$HOME"
rpid=
finish() {
  [ -n "$rpid" ] && { kill "$rpid" 2>/dev/null || true; wait "$rpid" 2>/dev/null || true; }
  for p in $(pgrep -f "agent boot --instance $T/machines" || true); do kill "$p" 2>/dev/null || true; done
  cleanup
}
trap finish EXIT

replica() { # [ARGS...]: (re)starts the replica, exports VAST_URL
  if [ -n "$rpid" ]; then kill "$rpid" 2>/dev/null || true; wait "$rpid" 2>/dev/null || true; fi
  "$BERTH_VAST_REPLICA" --offers "$DATA/offers_snapshot_2024-11-05.json" \
    --gpu-names "$DATA/gpu_names_unique_2024-11.json" --api-key KEY-cli "$@" > "$T/replica.out" 2>&1 & rpid=$!
  local i port
  for i in $(seq 1 100); do grep -q "listening on" "$T/replica.out" && break; sleep 0.05; done
  port=$(sed -n 's/listening on 127.0.0.1:\([0-9]*\)/\1/p' "$T/replica.out")
  [ -n "$port" ] || die "the replica did not start: $(cat "$T/replica.out")"
  export VAST_URL=http://127.0.0.1:$port
  rm -rf "$HOME/.cache/vastai" # the client caches ssh urls and gpu names per server
}
vastai() { (cd "$VAST_CLI_SRC" && "$PY" -c 'from vastai.cli.main import main; main()' "$@" 2>&1); }
vastpy() { (cd "$VAST_CLI_SRC" && "$PY" vast.py "$@" 2>&1); }
raw() { # FIELD < JSON: one field of a --raw answer
  "$PY" -c "import json,sys; d=json.load(sys.stdin); print(d.get('$1') if isinstance(d, dict) else d)"
}
status() { vastai show instance "$1" --raw | raw actual_status; }
wait_status() { # ID STATUS
  local i
  for i in $(seq 1 120); do [ "$(status "$1")" = "$2" ] && return 0; sleep 0.25; done
  die "instance $1 never reached $2 (now $(status "$1"))"
}
best() { # QUERY: the id of the first offer the client finds
  vastai search offers "$1" --raw --limit 5 | "$PY" -c "import json,sys; print(json.load(sys.stdin)[0]['id'])"
}

echo "== simulated instances"
replica --boot-seconds 1
X=$(best 'gpu_name=RTX_4090 num_gpus=1')
out=$(vastai create instance "$X" --image pytorch/pytorch --ssh --direct --label t1)
expect_in "Started. {'new_contract': " "$out"
N=$(grep -o "'new_contract': [0-9]*" <<<"$out" | grep -o "[0-9]*$")
# ports are known from create: ssh-url answers while the instance loads, and stays right
url=$(vastai ssh-url "$N"); [[ "$url" =~ ^ssh://root@127\.0\.0\.1:[0-9]+$ ]] || die "ssh-url while loading: $url"
expect_in "scp://root@127.0.0.1:" "$(vastai scp-url "$N")"
wait_status "$N" running
[ "$(vastai ssh-url "$N")" = "$url" ] || die "ssh-url changed once running"
# a rented offer leaves search, and renting it again fails as Vast fails
[ "$(vastai search offers "id=$X" --raw)" = "[]" ] || die "the rented offer $X is still in search"
expect_in "Failed with error 404: error 404/3603: no_such_ask Instance type by id $X is not available." \
  "$(vastai create instance "$X" --image pytorch/pytorch --ssh)"
row=$(vastai show instance "$N" --raw)
"$PY" - "$row" <<'EOF' || die "instance row: $row"
import json, sys, time
r = json.loads(sys.argv[1])
assert r["end_date"] > time.time() and 0 < r["duration"] <= r["end_date"] - time.time() + 5, "contract dates"
assert r["ports"]["22/tcp"][0]["HostPort"].isdigit(), "direct port"
assert r["label"] == "t1" and r["image_runtype"] == "ssh_direc ssh_proxy"
EOF
expect_in "label for $N set to t2." "$(vastai label instance "$N" t2)"
Y=$(best 'gpu_name=RTX_3090 num_gpus=1')
out=$(vastai create instance "$Y" --image pytorch/pytorch --jupyter --bid_price 0.3)
M=$(grep -o "'new_contract': [0-9]*" <<<"$out" | grep -o "[0-9]*$")
[ -n "$M" ] || die "no interruptible instance: $out"
vastai show instance "$M" --raw | raw ports | grep -q None || die "a proxy-only instance has ports"
expect_in "stopping instance [$N, $M]." "$(vastai stop instances "$N" "$M")"
[ "$(status "$N")" = stopped ] || die "stop instances did not stop $N"
[ "$(vastai ssh-url "$N")" = "$url" ] || die "ssh-url changed while stopped"
expect_in "starting instance [$N, $M]." "$(vastai start instances "$N" "$M")"
wait_status "$M" running
expect_in "Per gpu bid price changed" "$(vastai change bid "$M" --price 0.55)"
[ "$(vastai show instance "$M" --raw | raw dph_base)" = 0.55 ] || die "the bid did not change"
expect_in "only interruptible instances have a bid" "$(vastai change bid "$N" --price 0.5)"
expect_in "Rebooting instance $N." "$(vastai reboot instance "$N")"
[ "$(status "$N")" = loading ] || die "reboot did not restart $N"
wait_status "$N" running
expect_in "Recycling instance $N." "$(vastai recycle instance "$N")"
wait_status "$N" running
expect_in "created on machine" "$(vastai logs "$N")"
[ "$(vastai logs "$N" --tail 1 | grep -c .)" = 1 ] || die "logs --tail 1: $(vastai logs "$N" --tail 1)"
expect_in "total 0" "$(vastpy execute "$N" 'ls -l')"
expect_in "Failed with error 400" "$(vastpy execute "$N" 'cat /etc/passwd')"
expect_in "prepaid for" "$(vastai prepay instance "$N" 10)"
[ "$(vastai show deposit "$N" --raw | raw refundable_deposit)" = 10.0 ] || die "show deposit"
expect_in "Environment variable created successfully." "$(vastai create env-var FOO bar)"
expect_in "FOO" "$(vastai show env-vars -s)"; expect_in "bar" "$(vastai show env-vars -s)"
expect_in "updated successfully" "$(vastai update env-var FOO baz)"
expect_in "baz" "$(vastai show env-vars -s)"
expect_in "deleted successfully" "$(vastai delete env-var FOO)"
expect_in "No environment variables found." "$(vastai show env-vars)"
expect_in "127.0.0.1" "$(vastai show ipaddrs)"
expect_in "fastdotai/fastai-course" "$(vastai search templates --raw)"
for c in "show volumes" "show connections"; do
  o=$(vastai $c); grep -qiE "error|Traceback" <<<"$o" && die "$c: $o"
done
expect_in "Instance $N updated successfully." "$(vastai update instance "$N" --image pytorch/pytorch:2.4)"
[ "$(vastai show instance "$N" --raw | raw image_uuid)" = pytorch/pytorch:2.4 ] || die "update instance kept the image"
expect_in "Showing 1 of 1 results" "$(vastai show invoices-v1 -i)"
expect_in "Showing 2 of 2 results" "$(vastai show invoices-v1 -c)"
vastai show invoices --raw | sed -n '/^\[/,$p' | "$PY" -c "
import json,sys; rows=json.load(sys.stdin)
assert rows and all('quantity' in r and 'rate' in r for r in rows), rows" || die "invoice rows lack quantity and rate"
vastai show user --raw | "$PY" -c "
import json,sys; u=json.load(sys.stdin); assert u['balance'] == 0 and 0 < u['credit'] < 25, u" || die "show user"
key=$(ssh-keygen -q -t ed25519 -N '' -f "$T/k" <<<y >/dev/null; cat "$T/k.pub")
expect_in "ssh-key created" "$(vastai create ssh-key "$key")"
vastai show ssh-keys --raw | "$PY" -c "
import json,sys,re; k=json.load(sys.stdin); assert re.match(r'\d{4}-\d\d-\d\dT', k[0]['created_at']), k" || die "ssh key dates"
out=$(vastai create instances $(vastai search offers 'gpu_name=RTX_3090 num_gpus=1' --raw --limit 3 | "$PY" -c "import json,sys; print(' '.join(str(o['id']) for o in json.load(sys.stdin)[:2]))") --image pytorch/pytorch --ssh)
expect_in "'new_contracts': [" "$out"
out=$(vastai launch instance -g RTX_4090 -n 1 -i pytorch/pytorch --ssh)
expect_in "Instance launched successfully:" "$out"
L=$(grep -o "successfully: [0-9]*" <<<"$out" | grep -o "[0-9]*$")
expect_in "destroying instance [$M, $L]." "$(vastai destroy instances -y "$M" "$L")"
expect_in "destroying instance $N." "$(vastai destroy instance -y "$N")"
expect_in '"instances": null' "$(vastai show instance "$N" --raw)"
expect_in "Instance $N not found or no longer exists." "$(vastai show instance "$N" || true)"
[ "$(vastai search offers "id=$X" --raw | "$PY" -c "import json,sys; print(len(json.load(sys.stdin)))")" = 1 ] \
  || die "offer $X did not return to search after destroy"
echo "ok: simulated"

echo "== real machines (root: Linux namespaces)"
if [ "$(id -u)" -ne 0 ] || ! unshare -m true 2>/dev/null; then
  echo "SKIP real machines: needs root for mount namespaces"; echo OK; exit 0
fi
replica --boot-seconds 1 --machines "$T/machines" --berth "$BERTH" --sshd-lag 6
ssh-keygen -q -t ed25519 -N '' -f "$T/id" >/dev/null
expect_in "ssh-key created" "$(vastai create ssh-key "$(cat "$T/id.pub")")"
KID=$(vastai show ssh-keys --raw | "$PY" -c "import json,sys; print(json.load(sys.stdin)[0]['id'])")
X=$(best 'gpu_name=RTX_4090 num_gpus=1')
out=$(vastai create instance "$X" --image pytorch/pytorch --ssh --direct --onstart-cmd 'echo hello-onstart; date >> /workspace/boots')
N=$(grep -o "'new_contract': [0-9]*" <<<"$out" | grep -o "[0-9]*$")
url=$(vastai ssh-url "$N"); [[ "$url" =~ ^ssh://root@127\.0\.0\.1:[0-9]+$ ]] || die "ssh-url while loading: $url"
P=${url##*:}
S=(ssh -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=error -i "$T/id" -p "$P" root@127.0.0.1)
wait_status "$N" running
# running comes before sshd answers (Vast's order): the first login is refused
"${S[@]}" true 2>/dev/null && die "sshd answered at once: no lag behind running"
for i in $(seq 1 60); do "${S[@]}" true 2>/dev/null && break; sleep 0.5; done
[ "$("${S[@]}" 'wc -l < /workspace/boots')" = 1 ] || die "onstart did not run once"
expect_in "Rebooting instance $N." "$(vastai reboot instance "$N")"
wait_status "$N" running
for i in $(seq 1 60); do "${S[@]}" true 2>/dev/null && break; sleep 0.5; done
[ "$("${S[@]}" 'wc -l < /workspace/boots')" = 2 ] || die "reboot did not run onstart again"
[ "$(vastai logs "$N" | grep -c hello-onstart)" -ge 1 ] || die "logs lack onstart's output: $(vastai logs "$N")"
expect_in "boots" "$(vastpy execute "$N" 'ls -l /workspace')"
# copy: laptop -> instance and back over the client's rsync, instance -> instance for real
mkdir -p "$T/up" && echo payload > "$T/up/f.txt"
vastai copy "$T/up/" "C.$N:/workspace/up/" --identity "$T/id" > "$T/cp1.out"
[ "$("${S[@]}" cat /workspace/up/f.txt)" = payload ] || die "copy to the instance: $(cat "$T/cp1.out")"
Z=$(best 'gpu_name=RTX_3090 num_gpus=1')
out=$(vastai create instance "$Z" --image pytorch/pytorch --ssh --direct)
N2=$(grep -o "'new_contract': [0-9]*" <<<"$out" | grep -o "[0-9]*$")
wait_status "$N2" running
P2=$(vastai ssh-url "$N2"); P2=${P2##*:}
for i in $(seq 1 60); do ssh -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
  -o LogLevel=error -i "$T/id" -p "$P2" root@127.0.0.1 true 2>/dev/null && break; sleep 0.5; done
expect_in "Remote to Remote copy initiated" "$(vastai copy "C.$N:/workspace/up/" "C.$N2:/workspace/got/")"
vastai copy "C.$N2:/workspace/got/" "$T/back/" --identity "$T/id" > "$T/cp2.out"
[ "$(cat "$T/back/f.txt")" = payload ] || die "copy back from the second instance: $(cat "$T/cp2.out")"
expect_in "Remote copy canceled" "$(vastai cancel copy "C.$N2")"
# attach adds a key that logs in; detach removes it: it no longer logs in
ssh-keygen -q -t ed25519 -N '' -f "$T/id2" >/dev/null
expect_in "SSH key attached successfully" "$(vastai attach ssh "$N2" "$(cat "$T/id2.pub")")"
ssh -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=error \
  -i "$T/id2" -p "$P2" root@127.0.0.1 true || die "the attached key does not log in"
expect_in "SSH key removed from instance." "$(vastai detach ssh "$N" "$KID")"
"${S[@]}" true 2>/dev/null && die "the detached key still logs in"
expect_in "destroying instance [$N, $N2]." "$(vastai destroy instances -y "$N" "$N2")"
[ -z "$(ls "$T/machines/instances" 2>/dev/null)" ] || die "machines left: $(ls "$T/machines/instances")"
echo "ok: real machines"
echo OK
