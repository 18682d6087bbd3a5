#!/usr/bin/env bash
# Repositories on an SSH host: a real OpenSSH sshd on loopback, berth's static binary put on
# the host by berth itself, save/restore byte-identical through it, incremental saves that
# add only what is new, kill -9 in the middle of a save, damage found by verify and restore,
# a key restricted to an append-only `repo serve` that cannot forget or prune, and locations
# that are not a repository refused without making a directory.
source "$(dirname "$0")/lib.sh"
SSHD=$(command -v sshd || echo /usr/sbin/sshd)
[ -x "$SSHD" ] || skip "sshd not installed (openssh-server)"
need_namespaces
export BERTH BERTH_E2E_DIR=$T SSHD
unshare -m --propagation private bash -c '
source "$(dirname "$0")/lib.sh"
trap - EXIT
# The "host" is this machine as root: its home gets berth'"'"'s binary, so hide the real one.
pw_home=$(getent passwd "$(id -u)" | cut -d: -f6)
mkdir -p "$pw_home/.cache" "$pw_home/.ssh"
mount -t tmpfs tmpfs "$pw_home/.cache"; mount -t tmpfs tmpfs "$pw_home/.ssh"
mkdir -p /run/sshd
export HOME=$T/home XDG_DATA_HOME=$T/data XDG_CONFIG_HOME=$T/config
mkdir -p "$HOME" "$T/srv"
port=$(python3 -c "import socket; s=socket.socket(); s.bind((\"127.0.0.1\", 0)); print(s.getsockname()[1])")
ssh-keygen -q -t ed25519 -N "" -f "$T/srv/hostkey"
ssh-keygen -q -t ed25519 -N "" -f "$T/owner"
ssh-keygen -q -t ed25519 -N "" -f "$T/machine"
# The owner logs in normally; the machine key runs only an append-only serve of one path.
{ cat "$T/owner.pub"
  echo "command=\"$BERTH_STATIC_BINARY repo serve --append-only $T/repo\",restrict $(cat "$T/machine.pub")"
} > "$T/srv/authorized_keys"
cat > "$T/srv/sshd_config" <<CFG
Port $port
ListenAddress 127.0.0.1
HostKey $T/srv/hostkey
PidFile $T/srv/sshd.pid
AuthorizedKeysFile $T/srv/authorized_keys
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
CFG
"$SSHD" -f "$T/srv/sshd_config" -D -e 2>>"$T/srv/sshd.log" & sshd_pid=$!
trap "kill \$sshd_pid 2>/dev/null || true" EXIT
for i in $(seq 1 200); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.02; done
cat > "$T/ssh_config" <<CFG
Host repohost
  HostName 127.0.0.1
  Port $port
  User root
  IdentityFile $T/owner
  IdentitiesOnly yes
  StrictHostKeyChecking accept-new
  UserKnownHostsFile $T/known_hosts
Host machinekey
  HostName 127.0.0.1
  Port $port
  User root
  IdentityFile $T/machine
  IdentitiesOnly yes
  StrictHostKeyChecking accept-new
  UserKnownHostsFile $T/known_hosts
CFG
export BERTH_SSH_COMMAND="ssh -F $T/ssh_config"
R="ssh://repohost$T/repo"

echo "== locations that are not a repository are refused, and nothing is made"
cd "$T"
expect_exit 2 "$BERTH" snapshots --repo sftp://repohost/x
expect_in "unknown scheme" "$out"
expect_exit 2 "$BERTH" snapshots --repo rclone:remote:x
expect_in "unknown scheme" "$out"
expect_exit 1 env -u AWS_ACCESS_KEY_ID "$BERTH" save "$T" --repo s3:https://127.0.0.1:9/bucket
expect_in "no S3 credentials" "$out"
expect_exit 2 "$BERTH" save "$T" --repo s3:https://127.0.0.1:9/Bad_Bucket
expect_in "bucket name" "$out"
expect_exit 2 "$BERTH" snapshots --repo "ssh://repohost"
[ -z "$(ls -d "$T"/sftp* "$T"/s3* "$T"/rclone* 2>/dev/null)" ] || die "a scheme became a directory"
expect_exit 1 "$BERTH" snapshots --repo "ssh://root@127.0.0.1:1/x"
expect_in "cannot reach" "$out"

echo "== save to an SSH repository: berth puts itself on the host; the round trip is exact"
mkdir -p "$T/work/sub"
python3 -c "import os; open(\"$T/work/big.bin\",\"wb\").write(os.urandom(3<<20))"
echo hello > "$T/work/sub/a.txt"; ln -s sub/a.txt "$T/work/link"; chmod 600 "$T/work/sub/a.txt"
"$BERTH" save "$T/work" --repo "$R" > "$T/s1.out" || die "save: $(cat "$T/s1.out")"
ls "$pw_home"/.cache/berth/bin/berth-* >/dev/null 2>&1 || die "berth was not put on the host"
[ -f "$T/repo/config.json" ] || die "no repository on the host"
"$BERTH" --json snapshots --repo "$R" | python3 -c "
import json,sys; d=json.load(sys.stdin); assert d[\"repo\"] == \"$R\" and len(d[\"snapshots\"]) == 1, d"
"$BERTH" restore latest "$T/back" --repo "$R" > /dev/null
[ "$(tree_hash "$T/work")" = "$(tree_hash "$T/back")" ] || die "the round trip differs"

echo "== incremental: an unchanged save adds nothing; a new file adds about its size"
"$BERTH" --json save "$T/work" --repo "$R" > "$T/s2.json"
python3 -c "import json; d=json.load(open(\"$T/s2.json\")); assert d[\"stored_bytes\"] == 0 and d[\"unchanged\"], d"
python3 -c "import os; open(\"$T/work/new.bin\",\"wb\").write(os.urandom(1<<20))"
"$BERTH" --json save "$T/work" --repo "$R" > "$T/s3.json"
python3 -c "
import json; d=json.load(open(\"$T/s3.json\"))
assert (1<<20) <= d[\"stored_bytes\"] <= 1.1*(1<<20), d" || die "incremental save stored: $(cat "$T/s3.json")"

echo "== kill -9 in the middle of a save; the next save finishes and the data is whole"
python3 -c "import os; open(\"$T/work/huge.bin\",\"wb\").write(os.urandom(200<<20))"
"$BERTH" save "$T/work" --repo "$R" > /dev/null 2>&1 & spid=$!
# Killed once some of its packs are durable on the host (their index files are there).
for i in $(seq 1 6000); do [ -n "$(find "$T/repo/index" -type f -newer "$T/s3.json" 2>/dev/null | head -1)" ] && break; sleep 0.01; done
kill -9 $spid || die "the save had finished before the kill: nothing was tested"
wait $spid 2>/dev/null || true
"$BERTH" --json save "$T/work" --repo "$R" > "$T/s4.json" || die "the save after kill -9 failed"
# Only what the host lacks is sent again: less than the whole new file.
python3 -c "
import json; d=json.load(open(\"$T/s4.json\")); assert 0 < d[\"stored_bytes\"] < 199*(1<<20), d" \
  || die "the save after kill -9 resent everything: $(cat "$T/s4.json")"
"$BERTH" verify --repo "$R" > /dev/null || die "verify after kill -9"
rm -rf "$T/back"; "$BERTH" restore latest "$T/back" --repo "$R" > /dev/null
[ "$(tree_hash "$T/work")" = "$(tree_hash "$T/back")" ] || die "the round trip after kill -9 differs"

echo "== the append-only key adds and reads, never forgets, prunes or rewrites"
M="ssh://machinekey$T/repo"
echo more > "$T/work/sub/b.txt"
"$BERTH" save "$T/work" --repo "$M" > /dev/null || die "the append-only key cannot save"
[ "$("$BERTH" --json snapshots --repo "$M" | python3 -c "import json,sys; print(len(json.load(sys.stdin)[\"snapshots\"]))")" = 5 ] \
  || die "the append-only key does not list"
expect_exit 1 "$BERTH" forget latest --repo "$M"
expect_in "append-only" "$out"
expect_exit 1 "$BERTH" prune --repo "$M"
expect_in "append-only" "$out"
[ "$(ls "$T/repo/snapshots" | wc -l)" = 5 ] || die "a snapshot went away"
# The owner can.
"$BERTH" forget latest --repo "$R" > /dev/null
[ "$(ls "$T/repo/snapshots" | wc -l)" = 4 ] || die "the owner could not forget"

echo "== a machine saves to the SSH repository itself: the laptop never carries the bytes"
if command -v jupyter-notebook >/dev/null; then
  "$BERTH" up m1 > "$T/m1up.out" 2>&1 || die "up m1: $(cat "$T/m1up.out")"
  "$BERTH" ssh m1 -- "mkdir -p /notebooks/proj && head -c 3000000 /dev/urandom > /notebooks/proj/data.bin && echo nb > /notebooks/proj/n.ipynb"
  "$BERTH" repo allow-machines --repo "$R" --authorized-keys "$T/srv/authorized_keys" > "$T/allow.out" \
    || die "allow-machines: $(cat "$T/allow.out")"
  grep -q "restrict ssh-ed25519 .* berth-machines" "$T/srv/authorized_keys" || die "no restricted key on the host"
  grep -q "repo serve --append-only" "$T/srv/authorized_keys" || die "the machines key is not forced to append-only"
  "$BERTH" repo allow-machines --repo "$R" --authorized-keys "$T/srv/authorized_keys" > /dev/null
  [ "$(grep -c berth-machines "$T/srv/authorized_keys")" = 1 ] || die "allow-machines added its key twice"
  # This laptop cannot reach the repository at all during the save: only the machine can.
  BERTH_SSH_COMMAND=false "$BERTH" --json save m1 --repo "$R" > "$T/m1.json" 2> "$T/m1.err" \
    || die "machine-direct save: $(cat "$T/m1.err")"
  mid=$(python3 -c "import json; d=json.load(open(\"$T/m1.json\")); assert d[\"instance\"] == \"m1\" and d[\"provider\"] == \"local\", d; print(d[\"id\"])")
  [ -z "$("$BERTH" ssh m1 -- "ls /dev/shm /tmp 2>/dev/null | grep berth-direct || true")" ] || die "the repository key stayed on the machine"
  "$BERTH" restore "$mid" "$T/m1back" --repo "$R" > /dev/null
  cmp "$T/m1back/notebooks/proj/data.bin" <("$BERTH" ssh m1 -- cat /notebooks/proj/data.bin) || die "the machine-direct save differs"
  # A second save sends only what changed, still machine-direct.
  BERTH_SSH_COMMAND=false "$BERTH" --json save m1 --repo "$R" > "$T/m2.json"
  python3 -c "import json; d=json.load(open(\"$T/m2.json\")); assert d[\"stored_bytes\"] == 0 and d[\"unchanged\"], d"
  # The guard knows m1 was saved there: destroy needs no --repo and no --force.
  "$BERTH" destroy -y m1 > "$T/m1d.out" 2>&1 || die "destroy after a machine-direct save: $(cat "$T/m1d.out")"
  # The work follows to a new local machine: up --from latest reads the SSH repository.
  "$BERTH" up m1 --from latest --repo "$R" > "$T/m1b.out" 2>&1 || die "up --from: $(cat "$T/m1b.out")"
  cmp "$T/m1back/notebooks/proj/data.bin" <("$BERTH" ssh m1 -- cat /notebooks/proj/data.bin) \
    || die "up --from latest did not bring the notebook data back"
  [ "$("$BERTH" ssh m1 -- cat /notebooks/proj/n.ipynb)" = nb ] || die "the notebook did not come back"
  # A restore onto the machine reads the host from the machine too.
  "$BERTH" ssh m1 -- "echo spoiled > /notebooks/proj/n.ipynb"
  "$BERTH" --json restore "$mid" m1 --repo "$R" > "$T/m1r.out" 2>&1 || die "machine-direct restore: $(cat "$T/m1r.out")"
  python3 -c "import json; d=json.load(open(\"$T/m1r.out\")); assert d[\"machine_direct\"] and d[\"files\"] > 0, d" \
    || die "the restore did not go machine-direct: $(cat "$T/m1r.out")"
  [ "$("$BERTH" ssh m1 -- cat /notebooks/proj/n.ipynb)" = nb ] || die "the machine-direct restore did not put the notebook back"
  "$BERTH" destroy -y --force m1 > /dev/null
else
  echo "SKIP machine-direct: jupyter-notebook missing (local machines need it)"
fi

echo "== a flipped byte on the host: verify reports it, restore refuses it as data"
# Every big pack, so the snapshot restored below (which holds huge.bin) is certainly hit.
for pack in $(find "$T/repo/data" -type f -size +1M); do
  python3 -c "
import sys; p=sys.argv[1]; b=bytearray(open(p,\"rb\").read()); b[len(b)//2]^=1; open(p,\"wb\").write(b)" "$pack"
done
expect_exit 3 "$BERTH" verify --repo "$R"
expect_in "PROBLEMS" "$out"
rm -rf "$T/back"
s4=$(python3 -c "import json; print(json.load(open(\"$T/s4.json\"))[\"id\"])")
expect_exit 1 "$BERTH" restore "$s4" "$T/back" --repo "$R"
expect_in "damaged" "$out"
echo OK
' "$0"
