#!/usr/bin/env bash
# Saving to a repository on an SSH host, side by side: berth's ssh:// (its own binary serving
# the repository on the host) against restic's sftp: backend, on the same synthetic workspace
# (../shared/bench) and the same steps: full save, 10 MiB inside a checkpoint, 1% of files
# edited, nothing changed, full restore. The host is a real OpenSSH sshd on loopback (so the
# numbers are CPU and protocol, not a network). Besides the time, the bytes each tool sent over
# SSH (OpenSSH's own "Transferred: sent" count) against the bytes the step added to berth's
# repository, compressed: the floor for what must cross the wire. berth's repository is not
# encrypted yet; restic's is (AES-256 + Poly1305), which costs it CPU here.
# Usage: sudo bash bench/repo_ssh.sh [scale] [path/to/berth]   (default scale 0.1, ~340 MB)
set -euo pipefail
SCALE=${1:-0.1}
BERTH=$(realpath "${2:-$(dirname "$0")/../build/berth}")
export BERTH_STATIC_BINARY=${BERTH_STATIC_BINARY:-$(dirname "$BERTH")/berth-static}
SHARED=$(realpath "$(dirname "$0")/../../shared/bench")
[ "$(id -u)" = 0 ] || { echo "bench: needs root (an sshd on loopback in a mount namespace)" >&2; exit 1; }
command -v restic >/dev/null || { echo "bench: restic missing" >&2; exit 1; }
SSHD=$(command -v sshd || echo /usr/sbin/sshd)
W=$(mktemp -d /tmp/berth-bench-ssh-XXXXXX)
trap 'rm -rf "$W"' EXIT
export W SCALE BERTH SHARED SSHD
unshare -m --propagation private bash -euo pipefail -c '
pw_home=$(getent passwd 0 | cut -d: -f6)
mkdir -p "$pw_home/.cache" "$pw_home/.ssh"
mount -t tmpfs tmpfs "$pw_home/.cache"; mount -t tmpfs tmpfs "$pw_home/.ssh"
mkdir -p /run/sshd "$W/srv" "$W/home"
export HOME=$W/home XDG_DATA_HOME=$W/xdg XDG_CACHE_HOME=$W/cache NO_COLOR=1 RESTIC_PASSWORD=bench
port=$(python3 -c "import socket; s=socket.socket(); s.bind((\"127.0.0.1\", 0)); print(s.getsockname()[1])")
ssh-keygen -q -t ed25519 -N "" -f "$W/srv/hostkey"; ssh-keygen -q -t ed25519 -N "" -f "$W/id"
cp "$W/id.pub" "$W/srv/authorized_keys"
cat > "$W/srv/sshd_config" <<CFG
Port $port
ListenAddress 127.0.0.1
HostKey $W/srv/hostkey
PidFile $W/srv/sshd.pid
AuthorizedKeysFile $W/srv/authorized_keys
StrictModes no
UsePAM no
PasswordAuthentication no
PermitRootLogin prohibit-password
Subsystem sftp internal-sftp
CFG
"$SSHD" -f "$W/srv/sshd_config" -D -e 2>>"$W/srv/sshd.log" & sshd_pid=$!
trap "kill $sshd_pid 2>/dev/null || true" EXIT
for i in $(seq 1 200); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.02; done
cat > "$W/ssh_config" <<CFG
Host repohost
  HostName 127.0.0.1
  Port $port
  User root
  IdentityFile $W/id
  IdentitiesOnly yes
  StrictHostKeyChecking accept-new
  UserKnownHostsFile $W/known_hosts
CFG
SSH="ssh -F $W/ssh_config -o LogLevel=VERBOSE -E $W/ssh.log"
export BERTH_SSH_COMMAND="$SSH"
PY=/usr/bin/python3
echo "generating the workspace (scale $SCALE)..." >&2
"$PY" "$SHARED/gen_workspace.py" "$W/ws" "$SCALE"
WS_BYTES=$(du -sb "$W/ws" | cut -f1)
now() { date +%s.%N; }
sent() { local n; n=$(grep -o "Transferred: sent [0-9]*" "$W/ssh.log" 2>/dev/null | awk "{s+=\$3} END {print s+0}"); echo "$n"; }
drop() { sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true; }
run() { # TOOL STEP -> "seconds bytes_sent"
  local tool=$1 step=$2 t0 t1
  : > "$W/ssh.log"; drop; t0=$(now)
  case $tool,$step in
    berth,restore) rm -rf "$W/out"; "$BERTH" restore latest "$W/out" --repo "ssh://repohost$W/repo-berth" >/dev/null ;;
    berth,*)       "$BERTH" save "$W/ws" --repo "ssh://repohost$W/repo-berth" >/dev/null ;;
    restic,restore) rm -rf "$W/out"; restic -r "sftp:repohost:$W/repo-restic" -o sftp.command="$SSH repohost -s sftp" restore latest -q --target "$W/out" >/dev/null ;;
    restic,*)      [ -f "$W/repo-restic/config" ] || restic -r "sftp:repohost:$W/repo-restic" -o sftp.command="$SSH repohost -s sftp" init -q >/dev/null
                   restic -r "sftp:repohost:$W/repo-restic" -o sftp.command="$SSH repohost -s sftp" backup -q "$W/ws" >/dev/null ;;
  esac
  sync; t1=$(now)
  echo "$(echo "$t1 - $t0" | bc) $(sent)"
}
added() { du -sb "$W/repo-berth" 2>/dev/null | cut -f1 || echo 0; }
declare -A RES ADD
STEPS=(full ckpt10mb edit1pct unchanged restore)
for step in "${STEPS[@]}"; do
  case $step in full|unchanged|restore) ;; *) "$PY" "$SHARED/mutate.py" "$W/ws" "$step" >/dev/null ;; esac
  sleep 1.1
  before=$(added)
  for t in berth restic; do
    RES[$t,$step]=$(run "$t" "$step")
    [ "$t" = berth ] && ADD[$step]=$(( $(added) - before ))
    echo "  $step $t: ${RES[$t,$step]}" >&2
  done
done
echo
echo "workspace: $(numfmt --to=iec "$WS_BYTES") on an SSH host over loopback; seconds / bytes sent over SSH"
printf "%-10s %22s %22s %10s %16s %12s\n" step berth restic "berth/restic" "berth repo grew" "sent/grew"
for step in "${STEPS[@]}"; do
  read -r bs bb <<<"${RES[berth,$step]}"; read -r rs rb <<<"${RES[restic,$step]}"
  ratio=$(printf "%.2f" "$(echo "scale=4; $bs / $rs" | bc)")
  grew=${ADD[$step]:-0}
  if [ "$step" = restore ] || [ "$grew" -le 0 ]; then sg="-"; else sg=$(printf "%.2f" "$(echo "scale=4; $bb / $grew" | bc)"); fi
  printf "%-10s %22s %22s %10s %16s %12s\n" "$step" "$(printf "%.2fs" "$bs")/$(numfmt --to=iec "$bb")" \
    "$(printf "%.2fs" "$rs")/$(numfmt --to=iec "$rb")" "${ratio}x" "$(numfmt --to=iec "$grew")" "$sg"
done
echo "targets: time <= 0.5x restic; bytes sent for a save <= 1.1x what the repository grew"
'
