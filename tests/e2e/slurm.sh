#!/usr/bin/env bash
# `--provider slurm` on a real Slurm cluster from Debian's slurm-wlm and munge, started here
# (sshd_host.sh ... slurm): slurmctld and two slurmd (node1, node2; one CPU each), the login
# node being the test's sshd, the home shared as a cluster's file system is. Checked: bad
# options fail in one line; offers from sinfo; up through the scheduler, node 0 reached with
# ProxyJump and its host key pinned for the job, Jupyter loaded in Chromium, a kernel; stop
# refused with the reason; a second up that cannot fit pends with Slurm's reason, then starts
# when the first is destroyed, over two nodes (--nodes 2: `berth ssh --node 1`, the launcher's
# variables on node 0); --timeout ends a wait with scancel; kill -9 of up while pending leaves
# no job after `berth ls`; the time limit ends a job and `berth ls` says so; scancel outside
# berth is noticed; an idle machine ends its job; a job reconciled after berth's data is lost
# is reached by ssh; `account` shows berth's jobs in GPU- and
# CPU-hours from Slurm's job completion log; destroy --purge removes the store once no other
# machine may use it.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/sshd_host.sh"
need_namespaces
for b in slurmctld slurmd munged; do [ -x "/usr/sbin/$b" ] || skip "$b missing (slurm-wlm, munge)"; done
command -v jupyter-notebook >/dev/null || skip "jupyter-notebook missing"
PY=/usr/bin/python3; [ -x "$PY" ] || PY=python3
"$PY" -c "import websocket" 2>/dev/null || skip "python3-websocket missing"
CHROMIUM=$(command -v chromium || true)
[ -n "$CHROMIUM" ] || skip "chromium missing"

export HOME=$T/client XDG_DATA_HOME=$T/data XDG_CONFIG_HOME=$T/config
mkdir -p "$HOME/.ssh"; chmod 700 "$HOME/.ssh"
SLURM_NODES=2 sshd_host_start "$T/cluster" slurm || die "the test cluster did not start"
H=$T/cluster/home # the cluster's shared home, as this machine sees it
finish() {
  set +e
  for n in c1 c2 c3 c4 c5 c6 c7 c8; do "$BERTH" destroy -y --force "$n" > /dev/null 2>&1; done
  sshd_host_stop "$T/cluster"
  cleanup
}
trap finish EXIT
sshd_host_config login > "$HOME/.ssh/config"
lsh() { ssh -F "$HOME/.ssh/config" -o BatchMode=yes login "$@"; }
for i in $(seq 1 50); do lsh sinfo -h -o %T 2>/dev/null | grep -q idle && break; sleep 0.2; done
lsh sinfo || die "no Slurm on the login node"
jobs_named() { lsh "squeue -h -o '%j %T'" | grep -c "^berth-$1 " || true; }

echo "== bad options: one line, exit 2, nothing submitted"
expect_exit 2 "$BERTH" up c1 --provider slurm
expect_in "--host is needed" "$out"
expect_exit 2 "$BERTH" up c1 --provider slurm --host login --partition 'debug;rm -rf ~'
expect_in "bad --partition" "$out"
expect_exit 2 "$BERTH" up c1 --provider slurm --host login --mem lots
expect_exit 2 "$BERTH" up c1 --provider slurm --host login --nodes 0
[ -z "$(lsh squeue -h)" ] || die "a refused up submitted a job"

echo "== offers from sinfo"
out=$("$BERTH" offers --provider slurm --host login 2>&1) || die "offers: $out"
echo "$out"
"$BERTH" --json offers --provider slurm --host login | python3 -c "
import json,sys; o=json.load(sys.stdin)['offers'][0]
assert o['provider']=='slurm' and o['id']=='debug' and o['cpu_cores']==1, o" || die "offers --json"

echo "== up through the scheduler: node 0 by ProxyJump, its key pinned, Jupyter in Chromium"
"$BERTH" up c1 --provider slurm --host login --time 30 > "$T/up.out" 2> "$T/up.err" || die "up c1: $(cat "$T/up.err")"
cat "$T/up.err" "$T/up.out"
expect_in "job berth-c1 with --time=30" "$(cat "$T/up.err")"
[ "$(jobs_named c1)" = 1 ] || die "no job berth-c1: $(lsh squeue)"
grep -q "^berth-c1 ssh-ed25519 " "$XDG_DATA_HOME/berth/known_hosts" || die "node 0's host key was not pinned"
[ "$("$BERTH" ssh c1 -- 'cat ~/.berth/machines/c1/job')" = "$(lsh "squeue -h -n berth-c1 -o %i")" ] || die "berth ssh c1 did not reach the job's node"
"$BERTH" ssh c1 -- 'echo hello > ~/berth/c1/hello.txt'
url=$("$BERTH" jupyter c1)
jport=$(sed -E 's|http://127.0.0.1:([0-9]+)/.*|\1|' <<<"$url"); token=${url#*token=}
timeout 60 "$CHROMIUM" --headless --no-sandbox --disable-gpu --no-first-run --disable-background-networking \
  --disable-component-update --disable-sync --user-data-dir="$T/chrome" --virtual-time-budget=5000 \
  --dump-dom "$url" 2>/dev/null > "$T/tree.html" || true
grep -q 'hello.txt' "$T/tree.html" || { head -c 1500 "$T/tree.html"; die "Chromium did not see the work directory"; }
"$PY" "$(dirname "$0")/jupyter_kernel.py" "$jport" "$token" c1

echo "== stop is refused: a Slurm job cannot be suspended and resumed"
expect_exit 2 "$BERTH" stop c1
expect_in "cannot stop 'c1' and resume it" "$out"
[ "$(jobs_named c1)" = 1 ] || die "a refused stop touched the job"

echo "== --timeout ends a wait with scancel; kill -9 while pending leaves no job after berth ls"
expect_exit 1 "$BERTH" up c2 --provider slurm --host login --nodes 2 --timeout 6
expect_in "pending: Resources" "$out"
[ "$(jobs_named c2)" = 0 ] || die "the timed-out job is still queued: $(lsh squeue)"
"$BERTH" up c3 --provider slurm --host login --nodes 2 --timeout 120 > "$T/c3.out" 2>&1 & upid=$!
for i in $(seq 1 100); do [ "$(jobs_named c3)" = 1 ] && break; sleep 0.2; done
[ "$(jobs_named c3)" = 1 ] || die "up c3 never submitted"
sleep 1; kill -9 $upid; wait $upid 2>/dev/null || true
"$BERTH" ls > "$T/ls.out" 2>&1 || true
cat "$T/ls.out"
[ "$(jobs_named c3)" = 0 ] || die "a killed up left its job queued: $(lsh squeue)"

echo "== a second up that cannot fit pends, then starts when the first is destroyed (two nodes)"
"$BERTH" up c4 --provider slurm --host login --nodes 2 --time 30 --timeout 180 > "$T/c4.out" 2> "$T/c4.err" & c4pid=$!
for i in $(seq 1 100); do grep -q "pending: Resources" "$T/c4.err" && break; sleep 0.2; done
grep -q "pending: Resources" "$T/c4.err" || die "c4 did not show Slurm's reason: $(cat "$T/c4.err")"
"$BERTH" ls | grep -E "^c4 " || true
"$BERTH" destroy -y c1 > /dev/null 2>&1 || die "destroy c1"
[ "$(jobs_named c1)" = 0 ] || die "c1's job is still there"
[ -f "$H/berth/c1/hello.txt" ] || die "destroy removed the user's work directory"
wait $c4pid || die "c4 did not start after c1 went: $(cat "$T/c4.err")"
cat "$T/c4.err" | tail -3
"$BERTH" ssh c4 -- 'cat ~/.berth/machines/c4/dist.env' > "$T/dist.env"
grep -q "WORLD_SIZE='2'" "$T/dist.env" || die "node 0 has no launcher variables: $(cat "$T/dist.env")"
grep -q "MASTER_ADDR=" "$T/dist.env" || die "no MASTER_ADDR"
"$BERTH" ssh c4 --node 1 -- 'cat ~/.berth/machines/c4/node1.json' | grep -q '"node_id":1' || die "berth ssh --node 1 did not reach node 1"
grep -q "^berth-c4-n1 ssh-ed25519 " "$XDG_DATA_HOME/berth/known_hosts" || die "node 1's key was not pinned"
expect_exit 2 "$BERTH" ssh c4 --node 5 -- true
out=$("$BERTH" status c4); echo "$out"
expect_in "node 1    " "$out"; expect_in "berth ssh c4 --node 1" "$out"
echo "== reconcile after berth's data directory is lost: the job is found by its name"
mv "$XDG_DATA_HOME/berth" "$T/data-kept"
"$BERTH" ls --reconcile --provider slurm --host login > "$T/rec.out" 2>&1 || die "reconcile: $(cat "$T/rec.out")"
grep -E "^c4 " "$T/rec.out" > /dev/null || die "reconcile did not find c4: $(cat "$T/rec.out")"
# The recovered record has the job's shape: berth's new key let in, node 0's key pinned.
[ "$("$BERTH" ssh c4 -- 'cat ~/.berth/machines/c4/job')" = "$(lsh "squeue -h -n berth-c4 -o %i")" ] \
  || die "berth ssh does not reach the reconciled c4's node: $("$BERTH" status c4 2>&1)"
"$BERTH" destroy -y --force c4 > /dev/null 2>&1 || die "destroy the reconciled c4"
[ "$(jobs_named c4)" = 0 ] || die "c4's job is still there"
rm -rf "$XDG_DATA_HOME/berth"; mv "$T/data-kept" "$XDG_DATA_HOME/berth"
"$BERTH" ls > /dev/null 2>&1 || true

echo "== the time limit ends a job; berth ls says why"
"$BERTH" up c5 --provider slurm --host login --time 1 --gres gpu:1 > /dev/null 2> "$T/c5.err" || die "up c5: $(cat "$T/c5.err")"
for i in $(seq 1 60); do [ "$(jobs_named c5)" = 0 ] && break; sleep 2; done
[ "$(jobs_named c5)" = 0 ] || die "c5 outlived its time limit"
out=$("$BERTH" ls 2>&1); echo "$out"
grep -E "^c5 " <<<"$out" | grep -q "time limit" || die "berth ls does not say the time limit ended c5"

echo "== scancel outside berth is noticed; an idle machine ends its job"
"$BERTH" up c6 --provider slurm --host login --idle 1m > /dev/null 2> "$T/c6.err" || die "up c6: $(cat "$T/c6.err")"
"$BERTH" up c2 --provider slurm --host login > /dev/null 2> "$T/c2.err" || die "up c2: $(cat "$T/c2.err")"
lsh "scancel --name=berth-c2"
sleep 2
out=$("$BERTH" ls 2>&1)
grep -E "^c2 " <<<"$out" | grep -q "cancelled" || die "berth did not notice the scancel: $out"
for i in $(seq 1 90); do [ "$(jobs_named c6)" = 0 ] && break; sleep 2; done
[ "$(jobs_named c6)" = 0 ] || die "the idle c6 did not end its job: $("$BERTH" status c6 2>&1)"
expect_in "idle" "$(cat "$H/.berth/machines/c6/stops.log" 2>/dev/null || true)"

echo "== account: berth's jobs in GPU- and CPU-hours (Slurm's completion log: no slurmdbd here)"
"$BERTH" config set provider.slurm.gpu-hour-rate 0.5 > /dev/null
out=$("$BERTH" account --provider slurm --host login 2>&1) || die "account: $out"
echo "$out"
expect_in "(sacct --completion)" "$out"
grep -E "^c5 +[0-9]+ +TIMEOUT +1 +1 +1 " <<<"$out" > /dev/null || die "account does not show c5's job (one GPU) ended by its time limit"
grep -E "^c4 +[0-9]+ +[A-Z]+ +2 " <<<"$out" > /dev/null || die "account does not show c4's two nodes"
expect_in "GPU-hours" "$out"; expect_in "per GPU-hour" "$out"
"$BERTH" --json account --provider slurm --host login | "$PY" -c "
import json,sys; u=json.load(sys.stdin)['usage']
names={j['instance'] for j in u['jobs']}
assert {'c1','c4','c5'} <= names, names
assert u['cpu_hours'] > 0 and u['gpu_hours'] > 0.01 and u['gpu_hour_rate'] == 0.5 and u['cost'] == u['gpu_hours'] * 0.5, u
assert all(j['id'].isdigit() and j['hours'] >= 0 for j in u['jobs']), u" || die "account --json"

echo "== destroy --purge: the store on the shared home goes once no other machine may use it"
echo kept > "$H/.berth/storage/kept"
"$BERTH" up c7 --provider slurm --host login --time 5 > /dev/null 2> "$T/c7.err" || die "up c7: $(cat "$T/c7.err")"
"$BERTH" up c8 --provider slurm --host login --time 5 > /dev/null 2> "$T/c8.err" || die "up c8: $(cat "$T/c8.err")"
expect_exit 1 "$BERTH" destroy -y --force c7 --purge
expect_in "may use" "$out"; expect_in "c8" "$out"
expect_not_in "c2" "$out" # its job ended (scancel): it uses nothing, though its directory stays
[ -f "$H/.berth/storage/kept" ] && [ "$(jobs_named c7)" = 1 ] || die "a refused purge changed something"
"$BERTH" destroy -y --force c8 > /dev/null 2>&1 || die "destroy c8"
out=$("$BERTH" destroy -y --force c7 --purge 2>&1) || die "destroy --purge c7: $out"
expect_in "store login:/root/.berth/storage" "$out"
[ ! -e "$H/.berth/storage" ] || die "the purged store is still there"
[ -f "$H/berth/c1/hello.txt" ] || die "the purge removed a work directory"
out=$("$BERTH" destroy -y c6 --purge 2>&1) || die "destroy --purge of c6, whose job ended by itself: $out"
expect_in "no store to purge" "$out"
echo "slurm: all checks passed"
