#!/usr/bin/env bash
# `berth keys test` against a real OpenSSH sshd on loopback that answers like GitHub: exit 1
# and "You've successfully authenticated" for a registered key. Each failure cause is staged
# for real and must be named: host key changed, no key offered, key not registered, network.
source "$(dirname "$0")/lib.sh"
SSHD=$(command -v sshd || echo /usr/sbin/sshd)
[ -x "$SSHD" ] || skip "sshd not installed (openssh-server)"
need_namespaces
export BERTH BERTH_E2E_DIR=$T SSHD
unshare -m --propagation private bash -c '
source "$(dirname "$0")/lib.sh"
trap - EXIT
# ssh reads ~/.ssh of the passwd entry, not $HOME: hide the real one so only our keys count.
pw_home=$(getent passwd "$(id -u)" | cut -d: -f6)
if [ -d "$pw_home/.ssh" ]; then mount -t tmpfs tmpfs "$pw_home/.ssh"; fi
mkdir -p /run/sshd
export HOME=$T/home XDG_DATA_HOME=$T/data BERTH_SSH_CONFIG=/dev/null
mkdir -p "$HOME" "$T/srv"
port=$(python3 -c "import socket; s=socket.socket(); s.bind((\"127.0.0.1\", 0)); print(s.getsockname()[1])")

start_sshd() { # start_sshd HOSTKEY
  cat > "$T/srv/sshd_config" <<CFG
Port $port
ListenAddress 127.0.0.1
HostKey $1
PidFile $T/srv/sshd.pid
AuthorizedKeysFile $T/srv/authorized_keys
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
ForceCommand printf "Hi %s! You'"'"'ve successfully authenticated, but GitHub does not provide shell access.\n" "\$USER"; exit 1
CFG
  "$SSHD" -f "$T/srv/sshd_config" -D -e 2>>"$T/srv/sshd.log" & sshd_pid=$!
  for i in $(seq 1 200); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && return 0; sleep 0.02; done
  cat "$T/srv/sshd.log"; die "sshd did not start"
}
stop_sshd() { kill $sshd_pid; wait $sshd_pid 2>/dev/null || true; }
trap "kill \$sshd_pid 2>/dev/null || true" EXIT

ssh-keygen -q -t ed25519 -N "" -f "$T/srv/hostkey_a"
ssh-keygen -q -t ed25519 -N "" -f "$T/srv/hostkey_b"
touch "$T/srv/authorized_keys"
start_sshd "$T/srv/hostkey_a"
user=$(id -un)

echo "== no key at all: the host is pinned on first use, and the cause is named"
expect_exit 3 "$BERTH" keys test "$user@127.0.0.1" -p $port
expect_in "no-key-offered" "$out"; expect_in "berth keys generate" "$out"
grep -q "127.0.0.1" "$XDG_DATA_HOME/berth/known_hosts" || die "host key not pinned"
grep -q "github.com ssh-ed25519" "$XDG_DATA_HOME/berth/known_hosts" || die "GitHub keys not seeded"

echo "== a key the server does not know"
"$BERTH" keys generate --comment test@berth >/dev/null
expect_exit 3 "$BERTH" keys test "$user@127.0.0.1" -p $port
expect_in "key-not-registered" "$out"; expect_in "SSH and GPG keys" "$out"

echo "== registered: GitHub answers exit 1 with its greeting, which is success"
cat "$HOME/.ssh/id_ed25519.pub" >> "$T/srv/authorized_keys"
expect_exit 0 "$BERTH" keys test "$user@127.0.0.1" -p $port
expect_in "authenticated to 127.0.0.1" "$out"
"$BERTH" --json keys test "$user@127.0.0.1" -p $port > "$T/ok.json"
python3 -c "import json,sys; d=json.load(open(sys.argv[1])); assert d[\"ok\"] and d[\"cause\"]==\"ok\", d" "$T/ok.json"

echo "== the host key changed (a rebuilt host, or someone in between)"
stop_sshd; start_sshd "$T/srv/hostkey_b"
expect_exit 3 "$BERTH" keys test "$user@127.0.0.1" -p $port
expect_in "host-key-changed" "$out"; expect_in "ssh-keygen -R" "$out"

echo "== nothing listening"
stop_sshd
expect_exit 3 "$BERTH" keys test "$user@127.0.0.1" -p $port
expect_in "network" "$out"; expect_in "Connection refused" "$out"
echo "keys test: every cause named"
' "$0"
