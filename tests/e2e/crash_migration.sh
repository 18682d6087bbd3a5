#!/usr/bin/env bash
# kill -9 a migration of a few hundred MB at many points, named and timed. After each kill,
# every byte must be in one complete place; a rerun must finish with the store holding exactly
# the original tree and no leftovers.
source "$(dirname "$0")/lib.sh"
need_namespaces
export BERTH BERTH_E2E_DIR=$T
unshare -m --propagation private bash -c '
source "$(dirname "$0")/lib.sh"
trap - EXIT                                 # the outer shell cleans up
# $HOME and the store on two file systems, as on Paperspace (overlay root, NFS /storage), so
# the migration copies; on one file system berth renames, which a case below covers.
mkdir -p "$T/h" "$T/s"
mount -t tmpfs -o size=1500m tmpfs "$T/h"; mount -t tmpfs -o size=1500m tmpfs "$T/s"
HOME=$T/h/home; STORE=$T/s/store; SRC=$T/h/src
mkdir -p "$HOME" "$STORE" "$SRC"
export HOME

echo "== generating ~260 MB: 3 x 80 MB files, 2000 small files in 20 directories, links"
for i in 1 2 3; do head -c $((80 << 20)) /dev/urandom > "$SRC/checkpoint-$i.pt"; done
for d in $(seq 1 20); do
  mkdir -p "$SRC/data/part$d"
  for f in $(seq 1 100); do head -c $((RANDOM % 16384 + 1)) /dev/urandom > "$SRC/data/part$d/$f.bin"; done
done
ln -s checkpoint-1.pt "$SRC/latest.pt"
chmod 600 "$SRC/checkpoint-2.pt"
want=$(tree_hash "$SRC")
files=$(find "$SRC" -type f | wc -l)

holds_all() { [ -d "$1" ] && [ ! -L "$1" ] && [ "$(tree_hash "$1")" = "$want" ]; }

# After a kill: the original is whole in $HOME, or aside, or the store has it whole.
check_one_complete_place() {
  holds_all "$HOME/.data" || holds_all "$HOME/..data.berth-old" || holds_all "$STORE/cfg/.data" ||
    die "after kill ($1): no complete copy anywhere"
}

check_finished() {
  [ -L "$HOME/.data" ] || die "($1) ~/.data is not a link"
  holds_all "$STORE/cfg/.data" || die "($1) the store copy differs from the original"
  [ "$(tree_hash "$HOME/.data/")" = "$want" ] || die "($1) ~/.data does not show the original"
  leftovers=$(find "$HOME" "$STORE" -name "*.berth-*" | head -5)
  [ -z "$leftovers" ] || die "($1) leftovers: $leftovers"
  [ -z "$(ls -A "$STORE/.berth/journal")" ] || die "($1) journal not cleared"
}

reset() {
  rm -rf "$HOME" "$STORE"; mkdir -p "$HOME" "$STORE"
  cp -a "$SRC" "$HOME/.data"
  "$BERTH" --store "$STORE" persist init >/dev/null
}

run_case() { # run_case NAME: kill then rerun, with the kill already arranged by the caller
  check_one_complete_place "$1"
  "$BERTH" --store "$STORE" persist add "$HOME/.data" >/dev/null || die "($1) rerun failed"
  check_finished "$1"
  echo "ok: $1"
}

echo "== named crash points"
for point in file-copied:1 file-copied:700 file-copied:$files copied stored aside linked; do
  reset
  rc=0; BERTH_CRASH_AT=$point "$BERTH" --store "$STORE" persist add "$HOME/.data" >/dev/null 2>&1 || rc=$?
  [ $rc -eq 137 ] || die "crash point $point was not reached (exit $rc)"
  run_case "killed at $point"
done

echo "== kills at wall-clock instants through the copy"
for delay in 0.02 0.1 0.25 0.5 0.8 1.2 1.8; do
  reset
  "$BERTH" --store "$STORE" persist add "$HOME/.data" >/dev/null 2>&1 & pid=$!
  sleep "$delay"; kill -9 $pid 2>/dev/null || true; wait $pid 2>/dev/null || true
  run_case "killed after ${delay}s"
done

echo "== a killed merge: the store already has an older .data with some differing files"
for point in file-copied:3 file-copied:900 aside linked; do
  reset
  mkdir -p "$STORE/cfg/.data/data/part1"
  echo "older" > "$STORE/cfg/.data/data/part1/1.bin"          # differs: the store wins
  cp "$SRC/data/part1/2.bin" "$STORE/cfg/.data/data/part1/2.bin"  # identical
  rc=0; BERTH_CRASH_AT=$point "$BERTH" --store "$STORE" persist add "$HOME/.data" >/dev/null 2>&1 || rc=$?
  [ $rc -eq 137 ] || die "merge crash point $point not reached (exit $rc)"
  "$BERTH" --store "$STORE" persist add "$HOME/.data" >/dev/null || die "merge rerun failed"
  [ "$(cat "$STORE/cfg/.data/data/part1/1.bin")" = older ] || die "the store lost its version"
  kept=$(find "$STORE/cfg/.conflicts" -path "*part1/1.bin")
  [ "$(echo "$kept" | wc -l)" -eq 1 ] || die "conflict kept $(echo "$kept" | wc -l) times"
  cmp -s "$kept" "$SRC/data/part1/1.bin" || die "the conflicting original was not kept intact"
  cp "$kept" "$STORE/cfg/.data/data/part1/1.bin"   # put ours back: then the tree must equal the original
  check_finished "merge killed at $point"
  echo "ok: merge killed at $point"
done
echo "== one file system: a rename, killed right after it"
reset
mkdir -p "$T/h/store1"
"$BERTH" --store "$T/h/store1" persist init >/dev/null
rc=0; BERTH_CRASH_AT=stored "$BERTH" --store "$T/h/store1" persist add "$HOME/.data" >/dev/null 2>&1 || rc=$?
[ $rc -eq 137 ] || die "rename crash point not reached (exit $rc)"
holds_all "$T/h/store1/cfg/.data" || die "after the rename the store is not complete"
"$BERTH" --store "$T/h/store1" persist add "$HOME/.data" >/dev/null
[ -L "$HOME/.data" ] && [ "$(tree_hash "$HOME/.data/")" = "$want" ] || die "rename rerun"
[ -z "$(ls -A "$T/h/store1/.berth/journal")" ] || die "the journal entry of the rename was never finished"
# Killed after the rename again; this time the boot hook (persist restore) finishes it.
"$BERTH" --store "$T/h/store1" persist remove "$HOME/.data" >/dev/null
rc=0; BERTH_CRASH_AT=stored "$BERTH" --store "$T/h/store1" persist add "$HOME/.data" >/dev/null 2>&1 || rc=$?
[ $rc -eq 137 ] || die "rename crash point not reached the second time (exit $rc)"
"$BERTH" --store "$T/h/store1" persist restore >/dev/null || die "persist restore after the killed rename"
[ -z "$(ls -A "$T/h/store1/.berth/journal")" ] || die "persist restore left the journal entry"
[ -L "$HOME/.data" ] && [ "$(tree_hash "$HOME/.data/")" = "$want" ] || die "persist restore did not relink"
echo "ok: same file system, killed after the rename"

echo "crash test: every kill left a complete copy; every rerun finished"
' "$0"
