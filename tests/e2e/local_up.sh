#!/usr/bin/env bash
# `berth up` with the local provider, end to end with the real parts: namespaces and overlayfs,
# OpenSSH, Jupyter, a headless Chromium through the tunnel, a kernel computing 1+1, stop/start
# persistence, --max-hours with no client, two machines side by side, destroy leaving nothing.
source "$(dirname "$0")/lib.sh"
need_namespaces
SSHD=$(command -v sshd || echo /usr/sbin/sshd)
[ -x "$SSHD" ] || skip "sshd missing (openssh-server)"
command -v jupyter-notebook >/dev/null || skip "jupyter-notebook missing"
# Debian's python3 has Debian's modules (python3-websocket); a pyenv shim on PATH may not.
PY=/usr/bin/python3; [ -x "$PY" ] || PY=python3
"$PY" -c "import websocket" 2>/dev/null || skip "python3-websocket missing"
CHROMIUM=$(command -v chromium || true)
[ -n "$CHROMIUM" ] || skip "chromium missing"

export HOME=$T/home XDG_DATA_HOME=$T/data XDG_CONFIG_HOME=$T/config
mkdir -p "$HOME"
stop_all() { # never leave a machine running, whatever happened
  for n in $("$BERTH" --json ls 2>/dev/null | python3 -c "import json,sys; [print(i['name']) for i in json.load(sys.stdin)['instances']]" 2>/dev/null); do
    "$BERTH" destroy -y --force "$n" >/dev/null 2>&1 || true
  done
  cleanup
}
trap stop_all EXIT
INST=$XDG_DATA_HOME/berth/local/instances

echo "== up, then a command over ssh"
"$BERTH" up ws1 > "$T/up1.out"
cat "$T/up1.out"
expect_in "berth: 'ws1' is up" "$(cat "$T/up1.out")"
expect_in "jupyter   http://127.0.0.1:" "$(cat "$T/up1.out")"
out=$("$BERTH" ssh ws1 -- python3 -c '"import socket; print(socket.gethostname(), 6*7)"')
[ "$out" = "ws1 42" ] || die "ssh command printed: $out"
grep -q "^berth-ws1 ssh-ed25519 " "$XDG_DATA_HOME/berth/known_hosts" || die "host key not pinned"

echo "== Jupyter through the tunnel, in headless Chromium, and a kernel computing 1+1"
url=$("$BERTH" jupyter ws1)
case "$url" in http://127.0.0.1:*/?token=*) ;; *) die "bad jupyter url: $url" ;; esac
port=$(sed -E 's|http://127.0.0.1:([0-9]+)/.*|\1|' <<<"$url"); token=${url#*token=}
chrome() {
  timeout 60 "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$T/chrome" "$@" 2>/dev/null
}
chrome --virtual-time-budget=5000 --dump-dom "$url" > "$T/tree.html"
grep -q 'id="notebook_list"' "$T/tree.html" || { head -c 2000 "$T/tree.html"; die "Chromium did not get Jupyter's file list"; }
chrome --virtual-time-budget=5000 --window-size=1200,800 --screenshot="$T/jupyter.png" "$url" >/dev/null || true
"$PY" "$(dirname "$0")/jupyter_kernel.py" "$port" "$token" "on the local machine"
# The token is never on a command line: no process's arguments hold it (any user reads them).
[ -n "$token" ] || die "no token in the Jupyter URL"
if ps -eo args= | grep -F -- "$token" | grep -v grep >/dev/null; then
  die "Jupyter's token is visible in ps: $(ps -eo pid=,args= | grep -F -- "$token" | grep -v grep | head -2)"
fi
echo "ok: the token is in no process's command line"
# Jupyter is on the machine's loopback only: not on any other address of this host.
for ip in $(hostname -I 2>/dev/null); do
  ! (exec 3<>/dev/tcp/$ip/$port) 2>/dev/null || die "Jupyter's tunnel answers on $ip"
done

echo "== stop, start: /tmp and \$HOME are new; /storage, /notebooks and pip --user are back"
python3 - "$INST/ws1/notebooks" <<'PY'
import sys, zipfile, hashlib, base64
out = sys.argv[1] + "/berthdemo-1.0-py3-none-any.whl"
files = {"berthdemo/__init__.py": "VALUE = 42\n",
         "berthdemo-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: berthdemo\nVersion: 1.0\n",
         "berthdemo-1.0.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: t\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
rec = lambda d: "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(d.encode()).digest()).rstrip(b"=").decode() + f",{len(d)}"
with zipfile.ZipFile(out, "w") as z:
    for n, c in files.items(): z.writestr(n, c)
    z.writestr("berthdemo-1.0.dist-info/RECORD", "".join(f"{n},{rec(c)}\n" for n, c in files.items()) + "berthdemo-1.0.dist-info/RECORD,,\n")
PY
"$BERTH" ssh ws1 -- 'set -e; echo t > /tmp/scratch; echo h > ~/homefile; echo s > /storage/kept; echo n > /notebooks/kept;
  flags="--user --no-index --no-deps --no-cache-dir --disable-pip-version-check"
  python3 -m pip install --help | grep -q break-system-packages && flags="$flags --break-system-packages"
  python3 -m pip install $flags /notebooks/berthdemo-1.0-py3-none-any.whl >/dev/null
  python3 -c "import berthdemo; print(berthdemo.VALUE)"' | grep -qx 42 || die "pip --user in the machine"
"$BERTH" stop ws1 >/dev/null
"$BERTH" --json ls | python3 -c "import json,sys; s={i['name']:i['status'] for i in json.load(sys.stdin)['instances']}; assert s['ws1']=='stopped', s"
"$BERTH" start ws1 >/dev/null
out=$("$BERTH" ssh ws1 -- 'ls /tmp/scratch ~/homefile 2>&1 | wc -l; cat /storage/kept /notebooks/kept; python3 -c "import berthdemo; print(berthdemo.VALUE)"')
[ "$out" = "$(printf '2\ns\nn\n42')" ] || die "after stop/start: $out"

echo "== --max-hours: the machine stops itself, no berth client running"
"$BERTH" up ws2 --max-hours 0.0015 >/dev/null          # 5.4 seconds
agent=$(cat "$INST/ws2/agent.pid")
for i in $(seq 1 150); do kill -0 "$agent" 2>/dev/null || break; sleep 0.1; done
! kill -0 "$agent" 2>/dev/null || die "the ws2 agent is still running after its deadline"
grep -q '"state":"stopped"' "$INST/ws2/machine.json" || die "ws2 did not record its stop"
grep -q 'max-hours' "$INST/ws2/machine.json" || die "ws2 does not say why it stopped"
"$BERTH" ls | grep -E "^ws2 +local +stopped .*max-hours" >/dev/null || die "ls does not show ws2 stopped by max-hours"

echo "== two machines side by side"
"$BERTH" up ws3 >/dev/null
"$BERTH" ssh ws1 -- 'echo one > /tmp/who'
"$BERTH" ssh ws3 -- 'echo three > /tmp/who'
[ "$("$BERTH" ssh ws1 -- 'hostname; cat /tmp/who')" = "$(printf 'ws1\none')" ] || die "ws1 sees another machine"
[ "$("$BERTH" ssh ws3 -- 'hostname; cat /tmp/who')" = "$(printf 'ws3\nthree')" ] || die "ws3 sees another machine"
[ "$("$BERTH" ssh ws3 -- cat /storage/kept)" = s ] || die "/storage is not shared"

echo "== ssh-config: plain ssh berth-NAME"
"$BERTH" ssh-config >/dev/null
grep -q "^Include \"$XDG_DATA_HOME/berth/ssh_config\"" "$HOME/.ssh/config" || die "no Include in ~/.ssh/config"
[ "$(ssh -F "$HOME/.ssh/config" -o BatchMode=yes berth-ws3 hostname)" = ws3 ] || die "ssh berth-ws3"

echo "== destroy leaves no process, mount or port"
ports=$("$BERTH" --json status ws1 | python3 -c "import json,sys; d=json.load(sys.stdin); print(d['ssh']['port'], d['jupyter']['url'].split(':')[2].split('/')[0])")
"$BERTH" destroy -y --force ws1 >/dev/null
! pgrep -f "$INST/ws1" >/dev/null || die "a ws1 process survived destroy"
! grep -q "$INST/ws1" /proc/self/mountinfo || die "a ws1 mount survived destroy"
for p in $ports; do ! (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null || die "port $p still answers after destroy"; done
[ ! -e "$INST/ws1" ] || die "ws1's directory survived destroy"
[ -f "$XDG_DATA_HOME/berth/local/storage/kept" ] || die "destroy removed /storage"
! grep -q "^berth-ws1 " "$XDG_DATA_HOME/berth/known_hosts" || die "ws1's host key pin survived"

echo "== bad input"
expect_exit 1 "$BERTH" ssh nope -- true; expect_in "no instance named 'nope'" "$out"
expect_exit 1 "$BERTH" up ws3; expect_in "already exists" "$out"
expect_exit 2 "$BERTH" up Bad_Name; expect_in "bad instance name" "$out"
expect_exit 2 "$BERTH" destroy --force ws3 </dev/null; expect_in "pass -y" "$out"
expect_exit 2 "$BERTH" up x --provider nowhere; expect_in "unknown provider" "$out"
mkdir -p "$T/bin"; for t in ssh ssh-keygen python3; do ln -sf "$(command -v $t)" "$T/bin/$t"; done
PATH=$T/bin expect_exit 1 "$BERTH" up nojup; expect_in "Jupyter not found" "$out"
unshare -m bash -c "mount -t tmpfs tmpfs /usr/sbin && \"$BERTH\" up nosshd" > "$T/nosshd.out" 2>&1 && die "up without sshd worked"
grep -q "sshd not found" "$T/nosshd.out" || die "no sshd: $(cat "$T/nosshd.out")"
"$BERTH" ls | grep -qE "^(nojup|nosshd) " && die "a failed up left an instance behind"
"$BERTH" destroy -y --force ws3 >/dev/null; "$BERTH" destroy -y --force ws2 >/dev/null
echo "local up: all checks passed"
