#!/usr/bin/env bash
# A host of your own for berth's tests: a real sshd on 127.0.0.1 in its own mount namespace,
# where root's home (/root) is DIR/home and /usr/local/bin is empty, so what berth puts "on
# the host" lands in DIR and nowhere else on this machine. Root needed (mount namespaces).
#
# With `slurm` after DIR, the same namespace also runs a Slurm cluster (munged, slurmctld and
# the compute nodes' slurmd, config in DIR/slurm, bind-mounted at /etc/slurm): sshd is its login
# node, and the home is shared by the login and compute nodes as a cluster's file system is.
# SLURM_NODES=N (default 1) compute nodes node1..nodeN, each CPUs=SLURM_CPUS (default 1).
#
# By hand:   bash tests/e2e/sshd_host.sh start DIR [slurm]  (prints the ~/.ssh/config block)
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
  local slurm=${2:-}
  [ "$slurm" = slurm ] && slurm_config "$dir"
  unshare -m --propagation private sh -c '
    mount --bind "$1/home" /root && mount -t tmpfs -o mode=0755 tmpfs /usr/local/bin || exit 1
    if [ "$2" = slurm ]; then
      mkdir -p /etc/slurm && mount --bind "$1/slurm" /etc/slurm || exit 1
      /usr/sbin/munged --force --key-file "$1/slurm/munge.key" --socket "$1/slurm/munge.sock" \
        --pid-file "$1/slurm/munged.pid" --log-file "$1/slurm/munged.log" --seed-file "$1/slurm/munge.seed" || exit 1
      /usr/sbin/slurmctld -f /etc/slurm/slurm.conf -L "$1/slurm/slurmctld.log" || exit 1
      for n in $(sed -n "s/^NodeName=\([^ ]*\).*/\1/p" /etc/slurm/slurm.conf); do
        /usr/sbin/slurmd -f /etc/slurm/slurm.conf -N "$n" -L "$1/slurm/slurmd.$n.log" || exit 1
      done
    fi
    exec /usr/sbin/sshd -D -e -f "$1/sshd_config"' sh "$dir" "$slurm" > "$dir/sshd.log" 2>&1 &
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

slurm_config() {
  local dir=$1 n i nodes="" port
  mkdir -p "$dir/slurm/state" "$dir/slurm/spool"
  [ -f "$dir/slurm/munge.key" ] || { dd if=/dev/urandom of="$dir/slurm/munge.key" bs=1024 count=1 2>/dev/null; chmod 400 "$dir/slurm/munge.key"; }
  port=$(( 20000 + RANDOM % 20000 ))
  n=${SLURM_NODES:-1}
  {
    echo "ClusterName=berthtest"
    echo "SlurmctldHost=$(hostname)(127.0.0.1)"
    echo "SlurmctldPort=$port"
    echo "SlurmUser=root"
    echo "SlurmdUser=root"
    echo "AuthType=auth/munge"
    echo "CredType=cred/munge"
    echo "AuthInfo=socket=$dir/slurm/munge.sock"
    echo "StateSaveLocation=$dir/slurm/state"
    echo "SlurmdSpoolDir=$dir/slurm/spool/%n"
    echo "SlurmctldPidFile=$dir/slurm/slurmctld.pid"
    echo "SlurmdPidFile=$dir/slurm/slurmd.%n.pid"
    echo "ProctrackType=proctrack/linuxproc"
    echo "TaskPlugin=task/none"
    echo "SelectType=select/cons_tres"
    echo "SelectTypeParameters=CR_CPU"
    echo "SchedulerType=sched/backfill"
    echo "SchedulerParameters=sched_interval=2"
    echo "ReturnToService=2"
    echo "MinJobAge=600"
    echo "KillWait=5"
    echo "InactiveLimit=0"
    echo "JobAcctGatherType=jobacct_gather/none"
    echo "AccountingStorageType=accounting_storage/none"
    echo "JobCompType=jobcomp/filetxt"           # no slurmdbd: sacct --completion reads this
    echo "JobCompLoc=$dir/slurm/jobcomp.txt"
    echo "GresTypes=gpu"                         # GPUs without devices: counted, not bound
    echo "MpiDefault=none"
    echo "SlurmctldDebug=info"
    echo "SlurmdDebug=info"
    for i in $(seq 1 "$n"); do
      echo "NodeName=node$i NodeHostname=$(hostname) NodeAddr=127.0.0.1 Port=$((port + i)) CPUs=${SLURM_CPUS:-1} RealMemory=1000 Gres=gpu:1 State=UNKNOWN"
      nodes="$nodes${nodes:+,}node$i"
    done
    echo "PartitionName=debug Nodes=$nodes Default=YES MaxTime=8:00:00 State=UP"
  } > "$dir/slurm/slurm.conf"
  echo "Name=gpu File=/dev/null Count=1" > "$dir/slurm/gres.conf"
  touch "$dir/slurm/plugstack.conf"
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
  for f in "$dir"/slurm/slurmd.*.pid "$dir/slurm/slurmctld.pid" "$dir/slurm/munged.pid"; do
    p=$(cat "$f" 2>/dev/null || true)
    [ -n "$p" ] && kill "$p" 2>/dev/null
  done
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
    start) sshd_host_start "$(realpath -m "${2:?DIR}")" "${3:-}"; sshd_host_config lab
           echo "# sshd pid $SSHD_PID, port $SSHD_PORT; stop: bash $0 stop $2" ;;
    stop) sshd_host_stop "$(realpath -m "${2:?DIR}")" ;;
    *) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
  esac
fi
