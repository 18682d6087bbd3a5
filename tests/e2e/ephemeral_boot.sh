#!/usr/bin/env bash
# Two boots of an "ephemeral machine": each a fresh mount namespace whose $HOME is an empty
# tmpfs; the persistent store is the same directory both times. What the user set up in the
# first boot must be there, working, in the second, restored by the Paperspace boot hook.
source "$(dirname "$0")/lib.sh"
need_namespaces
command -v python3 >/dev/null || skip "python3 missing"
python3 -m pip --version >/dev/null 2>&1 || skip "pip missing"

STORE=$T/storage
mkdir -p "$STORE" "$T/home"

# A wheel built here, with no network.
python3 "$(dirname "$0")/make_wheel.py" "$T"
pip_flags="--user --no-index --no-deps --no-cache-dir --disable-pip-version-check"
python3 -m pip install --help 2>/dev/null | grep -q -- --break-system-packages && pip_flags+=" --break-system-packages"

# The user's own pre-run.sh line, which berth must keep.
printf '#!/usr/bin/env bash\necho user-line-ran\n' > "$STORE/pre-run.sh"

boot() { # boot N SCRIPT: runs SCRIPT in a fresh "machine"
  unshare -m --propagation private bash -euo pipefail -c "
    mount -t tmpfs tmpfs '$T/home'
    export HOME='$T/home' STORE='$STORE' T='$T' pip_flags='$pip_flags'
    cd \"\$HOME\"
    $2" > "$T/boot$1.log" 2>&1 || { cat "$T/boot$1.log"; die "boot $1 failed"; }
  cat "$T/boot$1.log"
}

echo "== boot 1: set up by hand, as the seed does, but with berth"
boot 1 '
  mkdir -p ~/.config/shipped && echo from-image > ~/.config/shipped/conf   # the image ships ~/.config
  $BERTH persist init --store $STORE
  python3 -m pip install $pip_flags $T/berthdemo-1.0-py3-none-any.whl
  $BERTH --store $STORE keys generate --comment ada@boot1
  git config --global user.name "Ada Lovelace"
  echo "python train.py --epochs 3" >> ~/.bash_history
  $BERTH hook install --paperspace --store $STORE
  python3 -c "import berthdemo; print(\"boot1 import\", berthdemo.VALUE)"
'
grep -q "boot1 import 42" "$T/boot1.log"
grep -q "user-line-ran" "$STORE/pre-run.sh" || die "the user's pre-run.sh line was dropped"
[ -x "$STORE/.berth/bin/berth" ] || die "no berth binary in the store"
"$STORE/.berth/bin/berth" version | grep -q static || die "the store's berth is not static"

echo "== boot 2: a new machine; the fastai runtime sources pre-run.sh, then starts Jupyter"
boot 2 '
  test -z "$(ls -A ~)"                                  # $HOME really is empty
  bash -c "set -e; . $STORE/pre-run.sh; echo JUPYTER-STARTS; echo \"PATH=\$PATH\"" > $T/runsh.out
  cat $T/runsh.out
  grep -q "^berth: restored 13 paths" $T/runsh.out
  grep -q user-line-ran $T/runsh.out
  grep -q JUPYTER-STARTS $T/runsh.out                   # the hook did not stop the parent
  grep -q "PATH=$HOME/.local/bin:" $T/runsh.out         # Jupyter gets ~/.local/bin
  python3 -c "import berthdemo; assert berthdemo.VALUE == 42; print(\"boot2 import ok\")"
  test "$(stat -L -c %a ~/.ssh)" = 700
  test "$(stat -L -c %a ~/.ssh/id_ed25519)" = 600
  test "$(stat -L -c %a ~/.ssh/id_ed25519.pub)" = 644
  grep -q ada@boot1 ~/.ssh/id_ed25519.pub
  test "$(git config --global user.name)" = "Ada Lovelace"
  grep -q "python train.py --epochs 3" ~/.bash_history
  test "$(cat ~/.config/shipped/conf)" = from-image      # what the image shipped was kept
  $BERTH --store $STORE persist status
  $BERTH --store $STORE --json doctor > $T/doctor.json || true
  echo boot2-ok
'
grep -q boot2-ok "$T/boot2.log"
python3 - "$T/doctor.json" <<'PY'
import json, sys
checks = {c["id"]: c for c in json.load(open(sys.argv[1]))["checks"]}
assert checks["links"]["status"] == "ok", checks["links"]
assert checks["boot-hook"]["status"] == "ok", checks["boot-hook"]
assert checks["ssh-perms"]["status"] == "ok", checks["ssh-perms"]
PY

echo "== boot 3: an installer re-created ~/.jupyter as a real directory mid-session; restore merges it"
boot 3 '
  . $STORE/pre-run.sh >/dev/null
  rm ~/.jupyter && mkdir -p ~/.jupyter/lab && echo new > ~/.jupyter/lab/setting
  rc=0; $BERTH --store $STORE persist status > $T/status.out || rc=$?
  test $rc = 3 && grep -q "~/.jupyter .*drifted" $T/status.out     # drift is a problem: exit 3
  $BERTH --store $STORE persist restore
  test -L ~/.jupyter && test "$(cat ~/.jupyter/lab/setting)" = new
'
echo "ephemeral boot: 3 boots, all state carried across"
