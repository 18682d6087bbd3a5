#!/usr/bin/env bash
# berth save / restore, end to end: a directory and a local-provider instance, byte-identical
# round trips (modes and mtimes too), the destroy guard, kill -9 mid-save, a crafted malicious
# repository, a full disk at the restore target, and the snapshot commands.
source "$(dirname "$0")/lib.sh"
need_namespaces
export HOME=$T/home XDG_DATA_HOME=$T/data XDG_CACHE_HOME=$T/cache
mkdir -p "$HOME"
REPO=$T/repo

# Content, modes and mtimes of every file; link targets.
full_hash() {
  (cd "$1" && { find . -type f -printf '%p %m %T@ %s\n' | sort; find . -type f -print0 | sort -z | xargs -0 -r sha256sum;
                find . -type l -printf '%p -> %l\n' | sort; } | sha256sum | cut -d' ' -f1)
}
make_ws() { # make_ws DIR MB
  mkdir -p "$1/data/a" "$1/data/b" "$1/nb"
  head -c $(($2 << 20)) /dev/urandom > "$1/data/checkpoint.pt"
  for i in $(seq 1 40); do head -c $((RANDOM * 3)) /dev/urandom > "$1/data/a/img$i.jpg"; done
  for i in $(seq 1 20); do seq 1 $((RANDOM)) > "$1/nb/notebook$i.ipynb"; done
  cp "$1/data/checkpoint.pt" "$1/data/b/best.pt"
  ln -s ../data/checkpoint.pt "$1/nb/latest.pt"
  chmod 600 "$1/nb/notebook1.ipynb"; chmod 750 "$1/data/b"
  touch -d '2024-01-02 03:04:05' "$1/nb/notebook2.ipynb"
}

echo "== a directory: save, unchanged save, restore byte-identical"
make_ws "$T/ws" 24
"$BERTH" --json save "$T/ws" --repo "$REPO" > "$T/s1.json"
"$BERTH" --json save "$T/ws" --repo "$REPO" > "$T/s2.json"
python3 - "$T/s1.json" "$T/s2.json" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
assert a["new_bytes"] < a["bytes"] * 0.6, a          # the duplicate checkpoint cost nothing
assert b["bytes_read"] == 0 and b["unchanged"], b      # nothing changed: nothing read
PY
"$BERTH" restore latest "$T/out1" --repo "$REPO" >/dev/null
[ "$(full_hash "$T/ws")" = "$(full_hash "$T/out1")" ] || die "restored directory differs"
out=$("$BERTH" --json save "$T/out1" --repo "$REPO")
python3 -c "import json,sys; d=json.loads(sys.argv[1]); assert d['bytes_read']==0, d" "$out" || die "save after restore re-read files"

echo "== snapshots, diff, forget, prune, verify"
echo "new" > "$T/ws/nb/added.txt"; rm "$T/ws/data/a/img1.jpg"
"$BERTH" save "$T/ws" --repo "$REPO" >/dev/null
first=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['id'])" "$T/s1.json")
d=$("$BERTH" diff "$first" latest --repo "$REPO")
expect_in "+ nb/added.txt" "$d"; expect_in "- data/a/img1.jpg" "$d"
[ "$("$BERTH" --json snapshots --repo "$REPO" | python3 -c "import json,sys; print(len(json.load(sys.stdin)['snapshots']))")" = 4 ] || die "snapshots"
"$BERTH" forget "$first" --repo "$REPO" >/dev/null
"$BERTH" prune --repo "$REPO" >/dev/null
"$BERTH" verify --repo "$REPO" | grep -q "^ok:" || die "verify after prune"

echo "== kill -9 during a save, at many points: the repository verifies, the next save completes"
make_ws "$T/big" 48
export BERTH_PACK_BYTES=$((2 << 20))
for point in pack-written:1 pack-indexed:3 pack-written:4 pack-indexed:2 before-snapshot; do
  rc=0; BERTH_CRASH_AT=$point "$BERTH" save "$T/big" --repo "$REPO" >/dev/null 2>&1 || rc=$?
  [ $rc -eq 137 ] || die "crash point $point not reached (exit $rc)"
  "$BERTH" verify --repo "$REPO" | grep -q "^ok:" || die "verify after a kill at $point"
done
for delay in 0.05 0.2 0.4; do
  "$BERTH" save "$T/big" --repo "$REPO" >/dev/null 2>&1 & pid=$!
  sleep $delay; kill -9 $pid 2>/dev/null || true; wait $pid 2>/dev/null || true
  "$BERTH" verify --repo "$REPO" | grep -q "^ok:" || die "verify after a kill at ${delay}s"
done
out=$("$BERTH" --json save "$T/big" --repo "$REPO")
python3 -c "
import json,sys; d=json.loads(sys.argv[1])
assert d['new_bytes'] < d['bytes'] * 0.5, d   # chunks stored before the kills were not sent again
" "$out" || die "the save after kills resent stored chunks: $out"
unset BERTH_PACK_BYTES
"$BERTH" restore latest "$T/out2" --repo "$REPO" >/dev/null
[ "$(full_hash "$T/big")" = "$(full_hash "$T/out2")" ] || die "restore after crashes differs"

echo "== a crafted repository cannot write outside the restore target"
# Forged objects need an unencrypted repository (an encrypted one does not open them at all).
PLAIN=$T/plain
"$BERTH" repo init --no-encryption --repo "$PLAIN" >/dev/null
python3 - "$PLAIN" <<'PY'
import hashlib, json, struct, sys, os
repo = sys.argv[1]
def entry(path, typ=0, target=""):
    p, t = path.encode(), target.encode()
    return (struct.pack("<I", len(p)) + p + struct.pack("<BIqQII", typ, 0o644, 0, 0, 0, 0)
            + struct.pack("<I", len(t)) + t + struct.pack("<I", 0))
for name, entries in {"evil1": [entry("ok.txt"), entry("../../escaped.txt")],
                      "evil2": [entry("link", 2, "/etc"), entry("link/passwd"), entry("ok.txt")],
                      "evil3": [entry("sub", 2, "../.."), entry("sub/escaped.txt")],
                      "links": [entry("link", 2, "/etc"), entry("sub/link", 2, "../../outside")]}.items():
    body = b"BTREE1\n" + struct.pack("<Q", len(entries)) + b"".join(entries)
    tid = hashlib.sha256(body).hexdigest()
    open(f"{repo}/trees/{tid}", "wb").write(b"\0" + body + struct.pack("<Q", len(body)))
    sid = hashlib.sha256(name.encode()).hexdigest()[:16]
    json.dump({"id": sid, "time": "2000-01-01T00:00:00Z", "tree": tid, "source": name},
              open(f"{repo}/snapshots/{sid}.json", "w"))
    print(sid)
PY
for sid in $(python3 -c "import hashlib; [print(hashlib.sha256(n.encode()).hexdigest()[:16]) for n in ('evil1','evil2','evil3')]"); do
  mkdir -p "$T/victim/target"
  expect_exit 1 "$BERTH" restore "$sid" "$T/victim/target" --repo "$PLAIN"
  expect_in "unsafe" "$out"
  [ -z "$(ls -A "$T/victim/target")" ] || die "a malicious snapshot wrote into the target"
  [ ! -e "$T/escaped.txt" ] && [ ! -e "$T/victim/escaped.txt" ] || die "a malicious snapshot escaped"
done
# Links alone are data, restored as links wherever they point (never followed while restoring).
sid=$(python3 -c "import hashlib; print(hashlib.sha256(b'links').hexdigest()[:16])")
"$BERTH" restore "$sid" "$T/victim/links" --repo "$PLAIN" >/dev/null || die "links alone were refused"
[ "$(readlink "$T/victim/links/link")" = /etc ] && [ "$(readlink "$T/victim/links/sub/link")" = ../../outside ] || die "links not restored as links"
for sid in $(python3 -c "import hashlib; [print(hashlib.sha256(n.encode()).hexdigest()[:16]) for n in ('evil1','evil2','evil3','links')]"); do
  "$BERTH" forget "$sid" --repo "$PLAIN" >/dev/null
done

echo "== disk full at the restore target: a clear error, nothing half-written that looks complete"
unshare -m bash -c "
  mkdir -p '$T/small' && mount -t tmpfs -o size=20m tmpfs '$T/small'
  rc=0; '$BERTH' restore latest '$T/small/out' --repo '$REPO' > '$T/full.out' 2>&1 || rc=\$?
  echo \$rc > '$T/full.rc'
  cd '$T/small/out' 2>/dev/null && find . -type f -printf '%s %p\n' > '$T/full.files' || true
"
[ "$(cat "$T/full.rc")" = 1 ] || die "restore onto a full disk exited $(cat "$T/full.rc")"
grep -q "No space left on device" "$T/full.out" || die "no clear error: $(cat "$T/full.out")"
! grep -q "berth-tmp" "$T/full.files" || die "a temp file was left behind"
while read -r size path; do   # every file that exists is complete
  [ "$(stat -c %s "$T/big/$path")" = "$size" ] || die "$path looks complete but is not"
done < "$T/full.files"

if [ -x "$(command -v sshd || echo /usr/sbin/sshd)" ] && command -v jupyter-notebook >/dev/null; then
  echo "== an instance: save over SSH, the destroy guard, restore onto a new one"
  trap '"$BERTH" destroy -y --force sr1 >/dev/null 2>&1 || true; "$BERTH" destroy -y --force sr2 >/dev/null 2>&1 || true; cleanup' EXIT
  "$BERTH" up sr1 >/dev/null
  NB1=$XDG_DATA_HOME/berth/local/instances/sr1/notebooks
  make_ws "$NB1/proj" 8
  expect_exit 1 "$BERTH" destroy -y sr1
  expect_in "holds work no snapshot has" "$out"; expect_in "/notebooks/proj/" "$out"
  "$BERTH" save sr1 >/dev/null
  echo "late edit" > "$NB1/proj/nb/late.txt"
  expect_exit 1 "$BERTH" destroy -y sr1; expect_in "/notebooks/proj/nb/late.txt" "$out"
  "$BERTH" save sr1 >/dev/null
  # /storage outlives every local machine: new files there are not what destroy loses.
  echo "setting" > "$XDG_DATA_HOME/berth/local/storage/cfg/new-after-save"
  want=$(full_hash "$NB1/proj")
  "$BERTH" destroy -y sr1 >/dev/null || die "the guard counted /storage, which destroy keeps"
  [ -f "$XDG_DATA_HOME/berth/local/storage/cfg/new-after-save" ] || die "destroy lost /storage"
  rm "$XDG_DATA_HOME/berth/local/storage/cfg/new-after-save" # so the save after the restore below has nothing new
  "$BERTH" up sr2 >/dev/null
  "$BERTH" restore latest sr2 >/dev/null
  [ "$(full_hash "$XDG_DATA_HOME/berth/local/instances/sr2/notebooks/proj")" = "$want" ] || die "instance restore differs"
  out=$("$BERTH" --json save sr2)
  python3 -c "import json,sys; d=json.loads(sys.argv[1]); assert d['bytes_read']==0, d" "$out" || die "first save after restore re-read: $out"
  "$BERTH" destroy -y sr2 >/dev/null
fi
echo "save/restore: all checks passed"
