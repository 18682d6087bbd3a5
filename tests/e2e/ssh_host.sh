#!/usr/bin/env bash
# `--provider ssh`: a host of the user's own, reached through an alias of the user's
# ~/.ssh/config (its key, its known_hosts; berth pins nothing and adds no key). The host is a
# real sshd in its own mount namespace with a separate home (sshd_host.sh). Checked: bad hosts
# fail in one line with nothing recorded; offers list the host; up checks the host, uploads
# the static agent (once: the second machine reuses it), Jupyter on the host's loopback loaded
# in Chromium through the tunnel, a kernel computes 1+1; two machines share the host with their
# own Jupyter; stop ends berth's processes there and start brings Jupyter back; save and
# restore of the work directory; an idle machine stops itself; destroy removes only berth's
# machine directory (the user's files, the work directory and the store stay); an up killed
# after the host has its directory is undone by `berth ls` (a namesake's stays); destroy --purge
# removes the store only when no other machine there uses it and the home links nothing into it.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/sshd_host.sh"
need_namespaces
command -v jupyter-notebook >/dev/null || skip "jupyter-notebook missing"
[ -x /usr/sbin/sshd ] || skip "sshd missing"
PY=/usr/bin/python3; [ -x "$PY" ] || PY=python3
"$PY" -c "import websocket" 2>/dev/null || skip "python3-websocket missing"
CHROMIUM=$(command -v chromium || true)
[ -n "$CHROMIUM" ] || skip "chromium missing"

export HOME=$T/client XDG_DATA_HOME=$T/data XDG_CONFIG_HOME=$T/config
mkdir -p "$HOME/.ssh"; chmod 700 "$HOME/.ssh"
sshd_host_start "$T/host" || die "the test sshd did not start"
H=$T/host/home # the host's home, as this machine sees it
finish() {
  set +e
  for n in s1 s2 s3 s4 s5 s6 s7; do "$BERTH" destroy -y --force "$n" > /dev/null 2>&1; done
  sshd_host_stop "$T/host"
  cleanup
}
trap finish EXIT
sshd_host_config lab > "$HOME/.ssh/config"
ssh -F "$HOME/.ssh/config" -o BatchMode=yes lab true || die "the alias does not reach the test sshd"
echo "mine" > "$H/mine.txt"

echo "== bad hosts: one line, exit 2 or 1, nothing recorded"
expect_exit 2 "$BERTH" up s1 --provider ssh
expect_in "--host is needed" "$out"
expect_exit 2 "$BERTH" up s1 --provider ssh --host 'lab;rm -rf ~'
expect_in "bad host" "$out"
expect_exit 2 "$BERTH" up s1 --provider ssh --host 'lab:99999'
expect_exit 1 "$BERTH" up s1 --provider ssh --host nosuch-alias.invalid
expect_in "cannot reach host nosuch-alias.invalid" "$out"
[ "$(wc -l <<<"$out")" -le 2 ] || die "not a short error: $out"
"$BERTH" ls | grep -q "no instances" || die "a failed up left a record: $("$BERTH" ls)"

echo "== offers: the host, with its CPUs and GPUs (none here)"
out=$("$BERTH" offers --provider ssh --host lab 2>&1) || die "offers: $out"
echo "$out"
expect_in "lab" "$out"
"$BERTH" --json offers --provider ssh --host lab | python3 -c "
import json,sys; o=json.load(sys.stdin)['offers'][0]
assert o['provider']=='ssh' and o['id']=='lab' and o['cpu_cores']>=1 and o['dph_total']==0, o" \
  || die "offers --json"

echo "== up: the host checked, the agent uploaded, Jupyter through the tunnel"
"$BERTH" up s1 --provider ssh --host lab > "$T/up.out" 2> "$T/up.err" || die "up s1: $(cat "$T/up.err")"
cat "$T/up.err" "$T/up.out"
expect_in "uploading berth's agent" "$(cat "$T/up.err")"
expect_in "host lab: x86_64" "$(cat "$T/up.err")"
[ "$("$BERTH" ssh s1 -- 'echo $HOME')" = /root ] || die "berth ssh does not reach the host's home"
[ -x "$T/host/home/.berth/machines/s1/state" ] || [ -f "$H/.berth/machines/s1/state" ] || die "no machine directory on the host"
[ -d "$H/berth/s1" ] || die "no work directory ~/berth/s1 on the host"
[ -z "$(grep -l "berth-s1" "$XDG_DATA_HOME/berth/known_hosts" 2>/dev/null || true)" ] || die "berth pinned a key for the user's own host"
"$BERTH" ssh s1 -- 'echo hello > ~/berth/s1/hello.txt'
url=$("$BERTH" jupyter s1)
jport=$(sed -E 's|http://127.0.0.1:([0-9]+)/.*|\1|' <<<"$url"); token=${url#*token=}
timeout 60 "$CHROMIUM" --headless --no-sandbox --disable-gpu --no-first-run --disable-background-networking \
  --disable-component-update --disable-sync --user-data-dir="$T/chrome" --virtual-time-budget=5000 \
  --dump-dom "$url" 2>/dev/null > "$T/tree.html" || true
grep -q 'hello.txt' "$T/tree.html" || { head -c 1500 "$T/tree.html"; die "Chromium did not see the work directory in Jupyter"; }
"$PY" "$(dirname "$0")/jupyter_kernel.py" "$jport" "$token" s1
ps -eo args | grep -F "$token" | grep -v grep && die "Jupyter's token is on a command line"

echo "== a second machine on the same host: its own Jupyter; the agent is not uploaded again"
"$BERTH" up s2 --provider ssh --host lab --workdir '~/projects/two' > /dev/null 2> "$T/up2.err" || die "up s2: $(cat "$T/up2.err")"
expect_not_in "uploading berth's agent" "$(cat "$T/up2.err")"
[ -d "$H/projects/two" ] || die "s2's work directory is not where asked"
p1=$(python3 -c "import json; print(json.load(open('$H/.berth/machines/s1/jupyter.json'))['port'])")
p2=$(python3 -c "import json; print(json.load(open('$H/.berth/machines/s2/jupyter.json'))['port'])")
[ "$p1" != "$p2" ] || die "both machines have Jupyter on port $p1"
url2=$("$BERTH" jupyter s2)
curl -fsS "http://127.0.0.1:$(sed -E 's|http://127.0.0.1:([0-9]+)/.*|\1|' <<<"$url2")/api/status?token=${url2#*token=}" > /dev/null || die "no Jupyter for s2"

echo "== stop ends berth's processes on the host (s2's stay); start brings Jupyter back"
jpid=$(python3 -c "import json; print(json.load(open('$H/.berth/machines/s1/jupyter.json'))['pid'])")
host_kernels() { # kernels running on the test host (its mount namespace)
  local ns q n=0; ns=$(cat "$T/host/sshd.ns")
  for q in /proc/[0-9]*; do
    [ "$(readlink "$q/ns/mnt" 2>/dev/null)" = "$ns" ] && tr '\0' ' ' < "$q/cmdline" 2>/dev/null | grep -q ipykernel && n=$((n+1))
  done
  echo $n
}
curl -fsS -X POST -H "Authorization: token $token" "http://127.0.0.1:$jport/api/kernels" > /dev/null || die "cannot start a kernel on s1"
sleep 2; k1=$(host_kernels)
[ "$k1" -ge 1 ] || die "no kernel process seen on the host"
"$BERTH" stop s1 > /dev/null 2>&1 || die "stop s1"
! kill -0 "$jpid" 2>/dev/null || die "s1's Jupyter ($jpid) still runs after stop returned"
sleep 1
[ "$(host_kernels)" -lt "$k1" ] || die "s1's kernel outlived its stop ($k1 kernels before, $(host_kernels) after)"
"$BERTH" ls | grep -E "^s1 .*stopped" > /dev/null || die "s1 is not shown stopped: $("$BERTH" ls)"
curl -fsS "http://127.0.0.1:$(sed -E 's|http://127.0.0.1:([0-9]+)/.*|\1|' <<<"$url2")/api/status?token=${url2#*token=}" > /dev/null || die "stopping s1 ended s2's Jupyter"
"$BERTH" start s1 > "$T/start.out" 2>&1 || die "start s1: $(cat "$T/start.out")"
url=$("$BERTH" jupyter s1)
curl -fsS "http://127.0.0.1:$(sed -E 's|http://127.0.0.1:([0-9]+)/.*|\1|' <<<"$url")/api/status?token=${url#*token=}" > /dev/null || die "no Jupyter after start"
[ "$("$BERTH" ssh s1 -- 'cat ~/berth/s1/hello.txt')" = hello ] || die "the work directory lost a file"

echo "== save and restore the work directory"
"$BERTH" save s1 --repo "$T/repo" > "$T/save.out" 2>&1 || die "save s1: $(cat "$T/save.out")"
cat "$T/save.out"
"$BERTH" ssh s1 -- 'rm ~/berth/s1/hello.txt; echo other > ~/berth/s1/new.txt'
"$BERTH" restore latest s1 --repo "$T/repo" > "$T/restore.out" 2>&1 || die "restore s1: $(cat "$T/restore.out")"
[ "$(cat "$H/berth/s1/hello.txt")" = hello ] || die "restore did not bring hello.txt back"

echo "== idle: a machine with --idle 1m stops itself; the reason is kept"
"$BERTH" up s3 --provider ssh --host lab --idle 1m > /dev/null 2> "$T/up3.err" || die "up s3: $(cat "$T/up3.err")"
for i in $(seq 1 90); do [ "$(cat "$H/.berth/machines/s3/state" 2>/dev/null)" = stopped ] && break; sleep 2; done
[ "$(cat "$H/.berth/machines/s3/state")" = stopped ] || die "s3 did not stop itself: $("$BERTH" status s3 2>&1)"
expect_in "idle" "$(cat "$H/.berth/machines/s3/stops.log")"
sleep 2
"$BERTH" ls | grep -E "^s3 .*stopped" > /dev/null || die "berth ls does not show s3 stopped: $("$BERTH" ls)"

echo "== destroy: only berth's machine directories go; the user's files stay"
for n in s1 s2 s3; do "$BERTH" destroy -y "$n" > /dev/null 2>&1 || die "destroy $n"; done
[ -z "$(ls -A "$H/.berth/machines" 2>/dev/null)" ] || die "machine directories left: $(ls "$H/.berth/machines")"
[ "$(cat "$H/mine.txt")" = mine ] || die "the user's own file changed"
[ -f "$H/berth/s1/hello.txt" ] && [ -d "$H/projects/two" ] && [ -d "$H/.berth/storage" ] \
  || die "destroy removed the user's work directory or the store"
echo "== kill -9 of up once the host has its machine directory, before berth recorded it"
rc=0; BERTH_CRASH_AT=up-created "$BERTH" up s7 --provider ssh --host lab > "$T/up7.out" 2>&1 || rc=$?
[ $rc = 137 ] || die "up s7 was not killed at up-created (exit $rc): $(cat "$T/up7.out")"
[ -f "$H/.berth/machines/s7/claim" ] || die "the killed up left no claimed machine directory to undo"
mkdir -p "$H/.berth/machines/s8" && echo someone-elses > "$H/.berth/machines/s8/claim" # a namesake's
"$BERTH" ls > "$T/ls7.out" 2>&1 || die "ls after the kill: $(cat "$T/ls7.out")"
! grep -E "^s7 " "$T/ls7.out" | grep -vq " destroyed " || die "the killed up's machine is still listed: $(cat "$T/ls7.out")"
! "$BERTH" ls | grep -q "^s7 " || die "the undone up is still listed: $("$BERTH" ls)"
[ ! -e "$H/.berth/machines/s7" ] || die "berth ls did not undo the killed up on the host: $(ls -A "$H/.berth/machines/s7")"
"$BERTH" up s7 --provider ssh --host lab > /dev/null 2> "$T/up7b.err" || die "up s7 again: $(cat "$T/up7b.err")"
"$BERTH" destroy -y s7 > /dev/null 2>&1 || die "destroy s7"
[ "$(cat "$H/.berth/machines/s8/claim")" = someone-elses ] || die "the undo touched another berth's directory"
rm -rf "$H/.berth/machines/s8"

echo "== destroy --purge: the store goes only when nothing else needs it"
"$BERTH" up s4 --provider ssh --host lab --store '~/store4' > /dev/null 2> "$T/up4.err" || die "up s4: $(cat "$T/up4.err")"
"$BERTH" up s5 --provider ssh --host lab --store '~/store4' > /dev/null 2> "$T/up5.err" || die "up s5: $(cat "$T/up5.err")"
mkdir -p "$H/store4/cfg" && echo kept > "$H/store4/cfg/kept"
expect_exit 1 "$BERTH" destroy -y s4 --purge
expect_in "may use" "$out"; expect_in "s5" "$out"
"$BERTH" ls | grep -E "^s4 .*running" > /dev/null || die "a refused purge destroyed s4: $("$BERTH" ls)"
"$BERTH" destroy -y s5 > /dev/null 2>&1 || die "destroy s5"
ln -s "/root/store4/cfg/kept" "$H/.kept"
expect_exit 1 "$BERTH" destroy -y s4 --purge
expect_in "your home links into" "$out"; expect_in ".kept" "$out"
[ "$(cat "$H/store4/cfg/kept")" = kept ] || die "a refused purge touched the store"
rm "$H/.kept"
out=$("$BERTH" --json destroy -y s4 --purge) || die "destroy --purge s4: $out"
python3 -c "import json,sys; j=json.loads(sys.argv[1]); assert j['status']=='destroyed' and j['purged'].startswith('lab:/root/store4'), j" "$out" \
  || die "destroy --purge --json: $out"
[ ! -e "$H/store4" ] || die "the purged store is still there"
[ "$(cat "$H/mine.txt")" = mine ] && [ -d "$H/.berth/storage" ] || die "the purge removed more than s4's store"
"$BERTH" up s6 --provider ssh --host lab --store '~' > /dev/null 2> "$T/up6.err" || die "up s6: $(cat "$T/up6.err")"
expect_exit 1 "$BERTH" destroy -y s6 --purge
expect_in "holds your home" "$out"
"$BERTH" destroy -y s6 > /dev/null 2>&1 || die "destroy s6"
mkdir -p "$H/mydata" && echo precious > "$H/mydata/data.csv" # the user's, given as the store
"$BERTH" up s6 --provider ssh --host lab --store '~/mydata' > /dev/null 2> "$T/up6b.err" || die "up s6 on mydata: $(cat "$T/up6b.err")"
expect_exit 1 "$BERTH" destroy -y s6 --purge
expect_in "was not made by berth" "$out"
"$BERTH" destroy -y s6 > /dev/null 2>&1 || die "destroy s6 (mydata)"
[ "$(cat "$H/mydata/data.csv")" = precious ] || die "the user's own directory was touched"
[ "$(cat "$H/mine.txt")" = mine ] || die "the user's own file changed"
expect_exit 1 "$BERTH" destroy -y nosuch --purge
expect_in "no instance named 'nosuch'" "$out"
echo "ssh host: all checks passed"
