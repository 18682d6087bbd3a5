#!/usr/bin/env bash
# Snapshots against hostile input and the seed's own layout: links saved as links wherever they
# point; crafted repositories (entries beneath links, a link chain out of the target, a
# symlinked directory in the target, a damaged newest snapshot, a crafted snapshot id, a
# truncated tree, a huge length, a chunker that would spin) refused or reported with nothing
# written outside the target and nothing deleted outside the repository; repository creation
# killed and raced; non-UTF-8 names; FIFOs and hard links through `persist init`.
source "$(dirname "$0")/lib.sh"
export HOME=$T/home XDG_DATA_HOME=$T/data XDG_CACHE_HOME=$T/cache
mkdir -p "$HOME"
REPO=$T/repo
# Unencrypted, so the test can forge objects as an attacker with write access could; an
# encrypted repository refuses forged objects outright (checked below).
"$BERTH" repo init --no-encryption --repo "$REPO" >/dev/null

echo "== the seed's layout: /notebooks/storage -> /storage, an absolute venv link"
mkdir -p "$T/nb/proj" "$T/abs"
echo hello > "$T/nb/proj/train.py"
ln -s "$T/abs" "$T/nb/storage"          # Paperspace's `ln -s /storage/` (absolute, outward)
ln -s /usr/bin/python3 "$T/nb/python"    # a venv's absolute link
ln -s ../../outside "$T/nb/proj/up"      # an outward relative link
"$BERTH" save "$T/nb" --repo "$REPO" > "$T/save.out" 2>&1 || die "the seed's layout cannot be saved: $(cat "$T/save.out")"
"$BERTH" restore latest "$T/nb2" --repo "$REPO" >/dev/null
[ "$(readlink "$T/nb2/storage")" = "$T/abs" ] || die "storage link not restored as a link"
[ "$(readlink "$T/nb2/python")" = /usr/bin/python3 ] || die "venv link not restored"
[ "$(readlink "$T/nb2/proj/up")" = ../../outside ] || die "relative link not restored"
[ "$(cat "$T/nb2/proj/train.py")" = hello ] || die "file not restored"

echo "== non-UTF-8 names are saved and restored byte for byte"
mkdir -p "$T/u"; printf 'x' > "$T/u/$(printf 'caf\xe9')"; printf 'y' > "$T/u/ok.txt"
"$BERTH" --json save "$T/u" --repo "$REPO" > "$T/u.json" || die "save of a non-UTF-8 name failed"
python3 -c "import json,sys; json.load(open(sys.argv[1]))" "$T/u.json" || die "--json output is not JSON"
"$BERTH" restore latest "$T/u2" --repo "$REPO" >/dev/null
[ -f "$T/u2/$(printf 'caf\xe9')" ] || die "the non-UTF-8 name was not restored as it was"

# Crafted objects, written straight into the repository as an attacker with write access to it
# would: a tree (format BTREE1, stored raw) and a snapshot naming it.
craft() { # craft SNAPID ENTRIES_JSON -> prints the tree id
  python3 - "$REPO" "$1" "$2" <<'PY'
import hashlib, json, struct, sys, os
repo, sid, entries = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
types = {"file": 0, "dir": 1, "symlink": 2}
b = b"BTREE1\n" + struct.pack("<Q", len(entries))
for e in sorted(entries, key=lambda e: e["path"].encode()):
    p, t = e["path"].encode(), e.get("target", "").encode()
    b += struct.pack("<I", len(p)) + p + struct.pack("<BIqQII", types[e["type"]], e.get("mode", 0o644), 0, 0, 0, 0)
    b += struct.pack("<I", len(t)) + t + struct.pack("<I", 0)
tid = hashlib.sha256(b).hexdigest()
open(os.path.join(repo, "trees", tid), "wb").write(b"\0" + b + struct.pack("<Q", len(b)))
snap = {"id": sid, "time": "2030-01-01T00:00:00.000000Z", "host": "x", "source": "crafted",
        "paths": [], "tree": tid, "parent": "", "files": 0, "bytes": 0, "new_bytes": 0, "stored_bytes": 0}
open(os.path.join(repo, "snapshots", sid + ".json"), "w").write(json.dumps(snap))
print(tid)
PY
}

echo "== crafted: a link chain out of the target, and a file planted beneath a link"
mkdir -p "$T/victimdir"
craft aaaaaaaaaaaaaaa1 '[{"path":"p/q/l","type":"symlink","target":"../.."},
  {"path":"esc","type":"symlink","target":"p/q/l/../../../victimdir"},
  {"path":"esc/planted","type":"file"}]' >/dev/null
expect_exit 1 "$BERTH" restore aaaaaaaaaaaaaaa1 "$T/t1/target" --repo "$REPO"
expect_in "beneath the symlink 'esc'" "$out"
[ -z "$(ls -A "$T/victimdir")" ] || die "something was written into the victim directory"
[ ! -e "$T/t1/target/esc" ] || die "the refused tree wrote into the target"
craft aaaaaaaaaaaaaaa2 '[{"path":"p/q/l","type":"symlink","target":"../.."},
  {"path":"esc","type":"symlink","target":"p/q/l/../../../victimdir"}]' >/dev/null
"$BERTH" restore aaaaaaaaaaaaaaa2 "$T/t2/target" --repo "$REPO" >/dev/null || die "links alone are data"
[ -L "$T/t2/target/esc" ] && [ -z "$(ls -A "$T/victimdir")" ] || die "the link chain wrote outside"

echo "== crafted: a directory in the target that is a link out is never written through"
mkdir -p "$T/t3/target"; ln -s "$T/victimdir" "$T/t3/target/sub"
craft aaaaaaaaaaaaaaa3 '[{"path":"sub/planted","type":"file"}]' >/dev/null
expect_exit 1 "$BERTH" restore aaaaaaaaaaaaaaa3 "$T/t3/target" --repo "$REPO"
[ -z "$(ls -A "$T/victimdir")" ] || die "wrote through a link in the target"
for s in aaaaaaaaaaaaaaa1 aaaaaaaaaaaaaaa2 aaaaaaaaaaaaaaa3; do "$BERTH" forget "$s" --repo "$REPO" >/dev/null; done

echo "== crafted: forget never follows an id from inside a file"
mkdir -p "$T/elsewhere"; echo keep > "$T/elsewhere/victim.json"
python3 - "$REPO" <<'PY'
import json, sys, os
snap = json.load(open(sorted(os.path.join(sys.argv[1], "snapshots", f) for f in os.listdir(os.path.join(sys.argv[1], "snapshots")))[0]))
snap["id"] = "../../elsewhere/victim"
open(os.path.join(sys.argv[1], "snapshots", "bbbbbbbbbbbbbbbb.json"), "w").write(json.dumps(snap))
PY
expect_exit 3 "$BERTH" snapshots --repo "$REPO"
expect_in "bbbbbbbbbbbbbbbb" "$out"
"$BERTH" forget bbbbbbbbbbbbbbbb --repo "$REPO" >/dev/null || die "cannot forget a damaged snapshot"
[ "$(cat "$T/elsewhere/victim.json")" = keep ] || die "forget deleted a file outside the repository"
[ ! -e "$REPO/snapshots/bbbbbbbbbbbbbbbb.json" ] || die "the damaged snapshot is still there"

echo "== damaged newest snapshot: verify says so (3), restore latest refuses, prune deletes nothing"
"$BERTH" verify --repo "$REPO" >/dev/null || die "verify of a sound repository failed"
echo "more" >> "$T/nb/proj/train.py"
"$BERTH" save "$T/nb" --repo "$REPO" >/dev/null
newest=$(ls -t "$REPO/snapshots" | head -1)
truncate -s 20 "$REPO/snapshots/$newest"
files_before=$(find "$REPO" -type f | sort | sha256sum)
expect_exit 3 "$BERTH" verify --repo "$REPO"; expect_in "${newest%.json}" "$out"
expect_exit 1 "$BERTH" restore latest "$T/t4" --repo "$REPO"; expect_in "damaged" "$out"
[ ! -e "$T/t4" ] || [ -z "$(ls -A "$T/t4")" ] || die "restore latest restored something else"
expect_exit 1 "$BERTH" prune --repo "$REPO"; expect_in "nothing was deleted" "$out"
[ "$(find "$REPO" -type f | sort | sha256sum)" = "$files_before" ] || die "prune deleted something"
"$BERTH" forget "${newest%.json}" --repo "$REPO" >/dev/null

echo "== damaged trees: truncated, and a length of 2^60: reported, never a crash"
tree=$("$BERTH" --json snapshots --repo "$REPO" | python3 -c "import json,sys; print(json.load(sys.stdin)['snapshots'][-1]['tree'])")
cp "$REPO/trees/$tree" "$T/tree.bak"
truncate -s 30 "$REPO/trees/$tree"
expect_exit 3 "$BERTH" verify --repo "$REPO"
expect_exit 1 "$BERTH" restore latest "$T/t5" --repo "$REPO"; expect_in "damaged" "$out"
python3 - "$REPO/trees/$tree" "$T/tree.bak" <<'PY'
import sys, struct
b = open(sys.argv[2], "rb").read()
open(sys.argv[1], "wb").write(b[:-8] + struct.pack("<Q", 1 << 60))
PY
expect_exit 3 "$BERTH" verify --repo "$REPO"
expect_exit 1 "$BERTH" restore latest "$T/t6" --repo "$REPO"
cp "$T/tree.bak" "$REPO/trees/$tree"
"$BERTH" verify --repo "$REPO" >/dev/null || die "the repaired repository does not verify"

echo "== a damaged index: verify says so, prune deletes nothing, a save still works"
idx=$(ls "$REPO/index" | head -1); cp "$REPO/index/$idx" "$T/idx.bak"
printf 'garbage' > "$REPO/index/$idx"
expect_exit 3 "$BERTH" verify --repo "$REPO"; expect_in "index file" "$out"
files_before=$(find "$REPO" -type f | sort | sha256sum)
expect_exit 1 "$BERTH" prune --repo "$REPO"
[ "$(find "$REPO" -type f | sort | sha256sum)" = "$files_before" ] || die "prune deleted with a damaged index"
"$BERTH" save "$T/nb" --repo "$REPO" >/dev/null || die "save with a damaged index failed"
cp "$T/idx.bak" "$REPO/index/$idx"

echo "== a chunker that would spin is refused"
cp "$REPO/config.json" "$T/config.bak"
python3 -c "import json,sys; j=json.load(open(sys.argv[1])); j['chunker']['max']=0; json.dump(j,open(sys.argv[1],'w'))" "$REPO/config.json"
code=0; timeout 30 "$BERTH" save "$T/nb" --repo "$REPO" > "$T/o" 2>&1 || code=$?
[ "$code" = 1 ] || die "expected exit 1 from a bad chunker, got $code: $(cat "$T/o")"
expect_in "chunker" "$(cat "$T/o")"
cp "$T/config.bak" "$REPO/config.json"

echo "== encrypted (the default): a forged snapshot and tree do not even open"
E=$T/encrypted
"$BERTH" save "$T/nb" --repo "$E" >/dev/null 2>&1 || die "first save to a new encrypted repository failed"
[ -f "$HOME/.config/berth/repo-keys/$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['id'])" "$E/config.json").json" ] || die "no key file for the new repository"
REPO=$E craft ccccccccccccccc1 '[{"path":"planted","type":"file"}]' >/dev/null
expect_exit 1 "$BERTH" restore ccccccccccccccc1 "$T/t7" --repo "$E"; expect_in "does not open" "$out"
[ ! -e "$T/t7/planted" ] || die "a forged snapshot was restored"
expect_exit 3 "$BERTH" verify --repo "$E"; expect_in "ccccccccccccccc1" "$out"
"$BERTH" forget ccccccccccccccc1 --repo "$E" >/dev/null
"$BERTH" verify --repo "$E" >/dev/null || die "the encrypted repository does not verify"
grep -rqa "train.py" "$E" && die "a file name is readable in the encrypted repository"

echo "== repository creation killed, then a save works; four first saves at once agree"
R2=$T/repo2
code=0; BERTH_CRASH_AT=repo-prepared "$BERTH" save "$T/nb" --repo "$R2" >/dev/null 2>&1 || code=$?
[ "$code" = 137 ] || die "the crash point was not reached ($code)"
"$BERTH" save "$T/nb" --repo "$R2" >/dev/null || die "a save after a killed creation failed"
R3=$T/repo3; pids=()
for i in 1 2 3 4; do "$BERTH" save "$T/nb" --repo "$R3" > "$T/c$i.out" 2>&1 & pids+=($!); done
ok=0; for p in "${pids[@]}"; do wait "$p" && ok=$((ok + 1)); done
# Saves that lost the race for the lock say so (exit 4); none may find a broken repository.
! grep -l "not a berth repository" "$T"/c?.out >/dev/null || die "a racing first save found a broken repository"
[ "$ok" -ge 1 ] || die "no racing save succeeded: $(cat "$T"/c?.out)"
[ "$(ls "$R3/snapshots" | wc -l)" -ge 1 ] && "$BERTH" verify --repo "$R3" >/dev/null || die "the raced repository does not verify"
[ -z "$(ls -a "$T" | grep berth-init)" ] || die "a temporary repository was left behind"

echo "== persist keeps FIFOs and hard links (the store on another file system: a copy)"
S=$T/store; mkdir -p "$HOME/.config/app" "$S"
mkfifo "$HOME/.config/app/pipe"
echo data > "$HOME/.config/app/a"; ln "$HOME/.config/app/a" "$HOME/.config/app/b"
echo other > "$T/outside-name"; ln "$T/outside-name" "$HOME/.config/app/c"   # a link to outside
check_persist='
  set -e
  "$BERTH" --store "$S" persist init > "$T/p.out" 2>&1 || { echo "persist init: $(cat "$T/p.out")"; exit 1; }
  [ -p "$S/cfg/.config/app/pipe" ] || { echo "the FIFO was not kept"; exit 1; }
  [ "$(stat -c %i "$S/cfg/.config/app/a")" = "$(stat -c %i "$S/cfg/.config/app/b")" ] || { echo "the hard link became two files"; exit 1; }
  [ "$(cat "$HOME/.config/app/c")" = other ] || { echo "the outside-linked file lost its content"; exit 1; }
  [ -L "$HOME/.config" ] || { echo "~/.config is not linked"; exit 1; }
'
export S T HOME
if [ "$(id -u)" -eq 0 ] && unshare -m true 2>/dev/null; then
  unshare -m bash -c "mount -t tmpfs -o size=64m tmpfs \"\$S\" && $check_persist" || die "persist across file systems"
  grep -q "hard links outside" "$S/.berth/log/berth.log" 2>/dev/null || true # the log lived on the tmpfs
else
  bash -c "$check_persist" || die "persist on one file system"
fi
echo "store_hostile: all checks passed"
