#!/usr/bin/env bash
# Boot-time restore: `berth persist restore` against fastai's pre-run.sh (the loop a Paperspace
# user runs today), side by side, on the same store and the same empty $HOME each run.
# Also the first migration of a populated ~/.local against `mv` + `ln -s` by hand.
# $HOME lives on tmpfs (/dev/shm) and the store on disk: two file systems, as on Paperspace
# (overlay root, NFS /storage), so a migration copies instead of renaming.
# Usage: bash bench/restore.sh [path/to/berth-static]   (needs hyperfine; prints ratios)
set -euo pipefail
# The boot hook runs the static build, so that is what is measured.
BERTH=${1:-$(dirname "$0")/../build/berth-static}
BERTH=$(realpath "$BERTH")
command -v hyperfine >/dev/null || { echo "bench: hyperfine is missing (apt-get install hyperfine)"; exit 1; }
W=$(mktemp -d /tmp/berth-bench-XXXXXX)
H=$(mktemp -d /dev/shm/berth-bench-XXXXXX 2>/dev/null || mktemp -d /tmp/berth-bench-home-XXXXXX)
trap 'rm -rf "$W" "$H"' EXIT
export HOME=$H/home NO_COLOR=1
STORE=$W/storage
mkdir -p "$HOME" "$STORE/cfg/.conda"

# fastai/paperspace-setup pre-run.sh (master), pointed at this store; .conda pre-created so
# its one-off `mamba create` is not measured.
sed "s|/storage|$STORE|g" > "$W/fastai-pre-run.sh" <<'SH'
#!/usr/bin/env bash
pushd ~ >/dev/null
mkdir -p /storage/cfg
if [ ! -e /storage/cfg/.conda ]; then
        mamba create -yp /storage/cfg/.conda
fi
for p in .local .ssh .config .ipython .fastai .jupyter .conda .kaggle
do
        if [ ! -e /storage/cfg/$p ]; then
                mkdir /storage/cfg/$p
        fi
        rm -rf ~/$p
        ln -s /storage/cfg/$p ~/
done
chmod 700 /storage/cfg/.ssh
for p in .git-credentials .gitconfig .bash_history
do
        if [ ! -e /storage/cfg/$p ]; then
                touch /storage/cfg/$p
        fi
        rm -rf ~/$p
        ln -s /storage/cfg/$p ~/
done
popd >/dev/null
SH
"$BERTH" --store "$STORE" persist init >/dev/null
ssh-keygen -q -t ed25519 -N "" -f "$STORE/cfg/.ssh/id_ed25519"

fresh="bash -c 'rm -rf $HOME && mkdir $HOME'"
hyperfine -N --warmup 5 --runs 200 --prepare "$fresh" --export-json "$W/restore.json" \
  -n "berth persist restore" "$BERTH --store $STORE persist restore" \
  -n "fastai pre-run.sh" "bash $W/fastai-pre-run.sh" >/dev/null

# A first migration: ~/.local with 30 packages' worth of small files (like pip --user).
python3 - "$H/local-src" <<'PY'
import os, sys, random
root = sys.argv[1]; random.seed(7)
for p in range(30):
    d = os.path.join(root, "lib/python3.11/site-packages", f"pkg{p}")
    os.makedirs(d, exist_ok=True)
    for f in range(60):
        with open(os.path.join(d, f"m{f}.py"), "wb") as fh:
            fh.write(os.urandom(random.randint(200, 40000)))
PY
size=$(du -sh "$H/local-src" | cut -f1)
prep_berth="bash -c 'rm -rf $HOME $W/s2 && mkdir -p $HOME $W/s2 && cp -a $H/local-src $HOME/.local'"
hyperfine -N --warmup 2 --runs 15 --export-json "$W/migrate.json" \
  --prepare "$prep_berth" -n "berth persist add ~/.local" "$BERTH --store $W/s2 persist add $HOME/.local" \
  --prepare "$prep_berth" -n "mv + ln -s (the seed, no verify)" "bash -c 'mkdir -p $W/s2/cfg && mv $HOME/.local $W/s2/cfg/ && ln -s $W/s2/cfg/.local $HOME/.local'" \
  --prepare "$prep_berth" -n "cp -a + sync + rm -rf + ln -s" "bash -c 'mkdir -p $W/s2/cfg && cp -a $HOME/.local $W/s2/cfg/ && sync -f $W/s2/cfg/.local && rm -rf $HOME/.local && ln -s $W/s2/cfg/.local $HOME/.local'" >/dev/null

python3 - "$W/restore.json" "$W/migrate.json" "$size" <<'PY'
import json, sys
def load(p): return {r["command"]: r for r in json.load(open(p))["results"]}
r = load(sys.argv[1]); m = load(sys.argv[2])
b, f = r["berth persist restore"], r["fastai pre-run.sh"]
print("boot restore, 13 paths (fastai's loop: 11), fresh $HOME each run, 200 runs")
print(f"  berth persist restore   mean {b['mean']*1e3:7.2f} ms  median {b['median']*1e3:7.2f} ms   (target < 20 ms)")
print(f"  fastai pre-run.sh       mean {f['mean']*1e3:7.2f} ms  median {f['median']*1e3:7.2f} ms")
print(f"  ratio berth / fastai    {b['mean']/f['mean']:.2f}x")
print(f"first migration of ~/.local ({sys.argv[3]}, 1800 files), 15 runs")
base = m["berth persist add ~/.local"]["mean"]
for name, res in m.items():
    print(f"  {name:36s} mean {res['mean']*1e3:8.1f} ms   berth/this {base/res['mean']:.2f}x")
PY
