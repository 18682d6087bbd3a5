#!/usr/bin/env bash
# The first seed (../shared/seeds/paperspace-setup.md) played line by line, with berth, on a
# simulated Gradient notebook: each boot is a fresh machine (its own mount and PID namespaces,
# a root that is an ephemeral overlay over this one, an empty /root), only /storage and
# /notebooks are kept, and the image's /run.sh sources /storage/pre-run.sh as root and then
# starts Jupyter, as Paperspace's fastai runtime does.
#   boot 1: pip install --user, berth persist init, berth hook install --paperspace,
#           berth keys generate, cd /notebooks && ln -s /storage/
#   boot 2: the package imports, ~/.ssh is 700/600/644, `berth keys test` reaches a test sshd
#           that knows the key (as GitHub would), and `berth save` of /notebooks keeps the link.
source "$(dirname "$0")/lib.sh"
need_namespaces
SSHD=$(command -v sshd || echo /usr/sbin/sshd)
[ -x "$SSHD" ] || skip "sshd missing (openssh-server)"
command -v jupyter-notebook >/dev/null || skip "jupyter-notebook missing"
python3 -m pip --version >/dev/null 2>&1 || skip "pip missing"

STORAGE=$T/storage NOTEBOOKS=$T/notebooks
mkdir -p "$STORAGE" "$NOTEBOOKS" "$T/image" "$T/srv"
python3 "$(dirname "$0")/make_wheel.py" "$T/image"
pip_flags="--user --no-index --no-deps --no-cache-dir --disable-pip-version-check"
python3 -m pip install --help 2>/dev/null | grep -q -- --break-system-packages && pip_flags+=" --break-system-packages"

# The image's entry point (Paperspace/fastai-docker's run.sh, SPEC §2): the user's boot hook as
# root, then Jupyter on the notebook directory.
cat > "$T/image/run.sh" <<'RUN'
#!/usr/bin/env bash
if [ -f /storage/pre-run.sh ]; then . /storage/pre-run.sh; fi
JUPYTER_TOKEN=gradient-token nohup jupyter-notebook --allow-root --no-browser --ip=127.0.0.1 \
  --port=$JPORT --NotebookApp.notebook_dir=/notebooks > /tmp/jupyter.log 2>&1 &
for i in $(seq 1 300); do
  curl -fsS "http://127.0.0.1:$JPORT/api/status?token=gradient-token" >/dev/null 2>&1 && exit 0
  sleep 0.1
done
echo "Jupyter did not start"; cat /tmp/jupyter.log; exit 1
RUN
chmod 755 "$T/image/run.sh"

# A test sshd that answers like GitHub for the keys it knows.
port=$(python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
ssh-keygen -q -t ed25519 -N "" -f "$T/srv/hostkey"
touch "$T/srv/authorized_keys"
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
ForceCommand printf "Hi %s! You've successfully authenticated, but GitHub does not provide shell access.\n" "\$USER"; exit 1
CFG
mkdir -p /run/sshd
"$SSHD" -f "$T/srv/sshd_config" -D -e 2>>"$T/srv/sshd.log" & sshd_pid=$!
trap 'kill $sshd_pid 2>/dev/null || true; cleanup' EXIT
for i in $(seq 1 200); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.02; done

boot() { # boot N SCRIPT: a fresh Gradient machine runs /run.sh, then SCRIPT as the user (root)
  local jport
  jport=$(python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
  unshare -m -p -f --propagation private bash -euo pipefail -c '
    R=$1; STORAGE=$2; NOTEBOOKS=$3; IMAGE=$4; BIN=$5
    mkdir -p "$R"; mount -t tmpfs berth-gradient "$R"
    mkdir -p "$R/upper" "$R/work" "$R/root"
    mount -t overlay overlay -o "lowerdir=/,upperdir=$R/upper,workdir=$R/work" "$R/root"
    M=$R/root
    mkdir -p "$M/storage" "$M/notebooks" "$M/opt/image"
    mount --rbind /dev "$M/dev"; mount -t proc proc "$M/proc"; mount --rbind /sys "$M/sys"
    for d in tmp run root; do mount -t tmpfs tmpfs "$M/$d"; done
    chmod 1777 "$M/tmp"; chmod 700 "$M/root"
    mount --bind "$STORAGE" "$M/storage"; mount --bind "$NOTEBOOKS" "$M/notebooks"
    cp "$IMAGE/run.sh" "$M/run.sh"; cp "$IMAGE"/*.whl "$M/opt/image/"
    cp "$BIN" "$M/usr/local/bin/berth"
    exec chroot "$M" /usr/bin/env -i HOME=/root USER=root LOGNAME=root LANG=C.UTF-8 \
      PATH=/root/.local/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
      JPORT="$6" PIP_FLAGS="$7" SSH_PORT="$8" /bin/bash -euo pipefail -c "
        cd /root
        ls -A /root > /tmp/home-at-boot
        bash /run.sh
        echo booted
        $9"
  ' boot "$T/m$1" "$STORAGE" "$NOTEBOOKS" "$T/image" "$BERTH_STATIC_BINARY" "$jport" "$pip_flags" "$port" "$2" \
    > "$T/boot$1.log" 2>&1 || { cat "$T/boot$1.log"; die "boot $1 failed"; }
  cat "$T/boot$1.log"
}

echo "== boot 1: the seed's first-time setup, each manual step a berth command"
boot 1 '
  test -z "$(cat /tmp/home-at-boot)"
  python3 -m pip install $PIP_FLAGS /opt/image/berthdemo-1.0-py3-none-any.whl
  berth persist init
  berth hook install --paperspace
  berth keys generate --comment ada@gradient
  cd /notebooks && ln -s /storage/
  echo "print(6*7)" > /notebooks/lesson1.py
  python3 -c "import berthdemo; print(\"boot1 import\", berthdemo.VALUE)"
'
grep -q "boot1 import 42" "$T/boot1.log" || die "the package did not import in boot 1"
[ "$(readlink "$NOTEBOOKS/storage")" = "/storage/" ] || die "the seed's link is not in /notebooks"
pub=$(find "$STORAGE" -name id_ed25519.pub | head -1)
[ -n "$pub" ] || die "the key was not kept in /storage"
cat "$pub" >> "$T/srv/authorized_keys" # the user adds it to GitHub

echo "== boot 2: a new machine, an empty /root; /run.sh sources the hook, then starts Jupyter"
boot 2 '
  test -z "$(cat /tmp/home-at-boot)"
  grep -q ada@gradient ~/.ssh/id_ed25519.pub
  python3 -c "import berthdemo; assert berthdemo.VALUE == 42; print(\"boot2 import ok\")"
  test "$(stat -L -c %a ~/.ssh)" = 700
  test "$(stat -L -c %a ~/.ssh/id_ed25519)" = 600
  test "$(stat -L -c %a ~/.ssh/id_ed25519.pub)" = 644
  curl -fsS "http://127.0.0.1:$JPORT/api/contents?token=gradient-token" | grep -q lesson1.py
  rc=0; berth keys test "root@127.0.0.1" -p "$SSH_PORT" > /tmp/keys.out 2>&1 || rc=$?
  cat /tmp/keys.out; test $rc = 0
  berth save /notebooks --repo /storage/snapshots
  snap=$(berth --json snapshots --repo /storage/snapshots | python3 -c "import json,sys; print(json.load(sys.stdin)[\"snapshots\"][-1][\"id\"])")
  berth restore "$snap" /tmp/back --repo /storage/snapshots
  test "$(readlink /tmp/back/storage)" = /storage/
  test "$(cat /tmp/back/lesson1.py)" = "print(6*7)"
  echo boot2-ok
'
grep -q boot2-ok "$T/boot2.log" || die "boot 2 did not finish"
grep -q "ok: authenticated to 127.0.0.1" "$T/boot2.log" || die "keys test did not reach the sshd"
echo "gradient seed: both boots passed"
