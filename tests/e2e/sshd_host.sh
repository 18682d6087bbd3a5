#!/usr/bin/env bash
# A host of your own for berth's tests: a real sshd on 127.0.0.1 in its own mount namespace,
# where root's home (/root) is DIR/home and /usr/local/bin is empty, so what berth puts "on
# the host" lands in DIR and nowhere else on this machine. Root needed (mount namespaces).
#
# By hand:   bash tests/e2e/sshd_host.sh start DIR     (prints the ~/.ssh/config block to use)
#            bash tests/e2e/sshd_host.sh stop DIR
# In tests:  source tests/e2e/sshd_host.sh; sshd_host_start DIR
#            -> SSHD_PORT, SSHD_PID, SSHD_KEY (the client's private key), SSHD_KNOWN (a
#               known_hosts file with the host's key), sshd_host_config ALIAS (a config block)

sshd_host_start() {
  local dir=$1 i port=""
  mkdir -p "$dir/home/.ssh" "$dir/bin"
  chmod 700 "$dir/home" "$dir/home/.ssh"
  [ -f "$dir/host_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C sshd-host -f "$dir/host_ed25519"
  [ -f "$dir/client_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C client -f "$dir/client_ed25519"
  cp "$dir/client_ed25519.pub" "$dir/home/.ssh/authorized_keys"
  chmod 600 "$dir/home/.ssh/authorized_keys"
  mkdir -p /run/sshd 2>/dev/null || true
  for i in $(seq 1 50); do
    port=$(( 20000 + RANDOM % 20000 ))
    ss -ltnH 2>/dev/null | awk '{print $4}' | grep -q ":$port\$" || break
  done
  cat > "$dir/sshd_config" <<EOF
Port $port
ListenAddress 127.0.0.1
HostKey $dir/host_ed25519
PidFile $dir/sshd.pid
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
AuthorizedKeysFile .ssh/authorized_keys
PrintMotd no
AllowTcpForwarding yes
Subsystem sftp internal-sftp
EOF
  unshare -m --propagation private sh -c '
    mount --bind "$1/home" /root && mount -t tmpfs -o mode=0755 tmpfs /usr/local/bin &&
    exec /usr/sbin/sshd -D -e -f "$1/sshd_config"' sh "$dir" > "$dir/sshd.log" 2>&1 &
  SSHD_PID=$!
  for i in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    kill -0 "$SSHD_PID" 2>/dev/null || { cat "$dir/sshd.log" >&2; return 1; }
    sleep 0.1
  done
  SSHD_PORT=$port SSHD_KEY=$dir/client_ed25519 SSHD_KNOWN=$dir/known_hosts SSHD_DIR=$dir
  echo "[127.0.0.1]:$port $(cut -d' ' -f1-2 "$dir/host_ed25519.pub")" > "$SSHD_KNOWN"
  echo "$SSHD_PID" > "$dir/sshd.unshare.pid"
  readlink "/proc/$SSHD_PID/ns/mnt" > "$dir/sshd.ns"
}

# The ~/.ssh/config block that reaches the host as ALIAS with the client key.
sshd_host_config() {
  cat <<EOF
Host $1
  HostName 127.0.0.1
  Port $SSHD_PORT
  User root
  IdentityFile $SSHD_KEY
  IdentitiesOnly yes
  UserKnownHostsFile $SSHD_KNOWN
  StrictHostKeyChecking yes
EOF
}

sshd_host_stop() {
  local dir=$1 p
  p=$(cat "$dir/sshd.pid" 2>/dev/null || true)
  [ -n "$p" ] && kill "$p" 2>/dev/null
  p=$(cat "$dir/sshd.unshare.pid" 2>/dev/null || true)
  [ -n "$p" ] && kill "$p" 2>/dev/null
  # Sessions' detached children (Jupyter, the watcher) live on in the namespace: end them.
  local ns q
  ns=$(cat "$dir/sshd.ns" 2>/dev/null || true)
  if [ -n "$ns" ]; then
    for q in /proc/[0-9]*; do
      [ "$(readlink "$q/ns/mnt" 2>/dev/null)" = "$ns" ] && kill "${q#/proc/}" 2>/dev/null
    done
  fi
  return 0
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  case "${1:-}" in
    start) sshd_host_start "$(realpath -m "${2:?DIR}")"; sshd_host_config lab
           echo "# sshd pid $SSHD_PID, port $SSHD_PORT; stop: bash $0 stop $2" ;;
    stop) sshd_host_stop "$(realpath -m "${2:?DIR}")" ;;
    *) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
  esac
fi
