#!/usr/bin/env bash
# Bad input: a clear one-line error naming the thing and what to do, a non-zero exit, and
# nothing changed.
source "$(dirname "$0")/lib.sh"
need_namespaces
export BERTH BERTH_E2E_DIR=$T
unshare -m --propagation private bash -c '
source "$(dirname "$0")/lib.sh"
trap - EXIT
HOME=$T/home; STORE=$T/store; export HOME
mkdir -p "$HOME"; mount -t tmpfs -o size=64m tmpfs "$HOME"   # an ephemeral home, apart from the stores
mkdir -p "$HOME/.data/sub" "$STORE"
head -c 2000000 /dev/urandom > "$HOME/.data/sub/blob"
echo keep > "$HOME/.data/note"
before=$(tree_hash "$HOME/.data")
unchanged() { [ "$(tree_hash "$HOME/.data")" = "$before" ] || die "$1 changed ~/.data"; [ ! -L "$HOME/.data" ] || die "$1 linked ~/.data"; }
one_line() { [ "$(grep -c "^berth: error: " <<<"$out")" -eq 1 ] || die "expected one error line, got: $out"; }

echo "== store not writable (read-only mount)"
mkdir -p "$T/ro"; mount --bind "$T/ro" "$T/ro"; mount -o remount,bind,ro "$T/ro"
expect_exit 1 "$BERTH" --store "$T/ro" persist add "$HOME/.data"
one_line; expect_in "not writable" "$out"; expect_in "Read-only file system" "$out"; expect_in "--store DIR" "$out"
unchanged "read-only store"

echo "== store missing"
expect_exit 1 "$BERTH" --store "$T/nope" persist init
one_line; expect_in "store $T/nope does not exist" "$out"

echo "== path outside \$HOME, and \$HOME itself"
"$BERTH" --store "$STORE" persist init >/dev/null
expect_exit 2 "$BERTH" --store "$STORE" persist add /etc
one_line; expect_in "/etc is outside your home directory" "$out"
expect_exit 2 "$BERTH" --store "$STORE" persist add "$HOME/../etc"
expect_exit 2 "$BERTH" --store "$STORE" persist add "$HOME"
[ -e /etc/passwd ] && [ ! -L /etc ] || die "/etc touched"

echo "== symlink loop"
ln -s "$HOME/.loop" "$HOME/.loop"
expect_exit 1 "$BERTH" --store "$STORE" persist add "$HOME/.loop"
one_line; expect_in "symlink loop" "$out"
[ "$(readlink "$HOME/.loop")" = "$HOME/.loop" ] || die "loop link changed"
grep -q "\.loop" "$STORE/.berth/manifest.json" && die "a failed path was recorded"

echo "== disk full: a 1 MiB store for a 2 MB directory"
mkdir -p "$T/small"; mount -t tmpfs -o size=1m tmpfs "$T/small"
echo tiny > "$HOME/.tiny"; "$BERTH" --store "$T/small" persist add "$HOME/.tiny" >/dev/null   # a tiny one fits
expect_exit 1 "$BERTH" --store "$T/small" persist add "$HOME/.data"
one_line; expect_in "not enough space" "$out"; expect_in "free space in the store" "$out"
unchanged "disk full"
[ -z "$(find "$T/small" -name "*berth-incoming*")" ] || die "a half-written copy was left in the full store"

echo "== disk full discovered mid-copy (the store fills up while berth copies)"
mkdir -p "$T/tight"; mount -t tmpfs -o size=4m tmpfs "$T/tight"
"$BERTH" --store "$T/tight" persist init >/dev/null
touch "$T/hold2"
BERTH_PAUSE_AT=file-copied BERTH_PAUSE_FILE=$T/hold2 "$BERTH" --store "$T/tight" persist add "$HOME/.data" > "$T/tight.out" 2>&1 & pid=$!
for i in $(seq 1 500); do [ -e "$T/hold2.reached" ] && break; sleep 0.01; done
[ -e "$T/hold2.reached" ] || die "berth never reached the copy"
head -c 8000000 /dev/zero > "$T/tight/filler" 2>/dev/null || true   # someone else fills the disk
rm "$T/hold2"; rc=0; wait $pid || rc=$?; out=$(cat "$T/tight.out")
[ $rc -eq 1 ] || die "expected exit 1 on a full disk, got $rc: $out"
one_line; expect_in "No space left on device" "$out"; expect_in "nothing was moved" "$out"
unchanged "full mid-copy"
[ -z "$(find "$T/tight" -name "*berth-incoming*")" ] || die "a half-written copy was left"

echo "== a second berth on the same migration"
export BERTH_PAUSE_AT=file-copied BERTH_PAUSE_FILE=$T/hold
touch "$T/hold"
"$BERTH" --store "$STORE" persist add "$HOME/.data" >/dev/null 2>&1 & first=$!
for i in $(seq 1 500); do [ -e "$T/hold.reached" ] && break; sleep 0.01; done
[ -e "$T/hold.reached" ] || die "the first berth never reached the copy"
unset BERTH_PAUSE_AT
expect_exit 4 "$BERTH" --store "$STORE" persist add "$HOME/.data"
one_line; expect_in "another berth (pid $first) is working on this store" "$out"
rm "$T/hold"; wait $first || die "the first berth failed after the second was refused"
[ -L "$HOME/.data" ] && [ "$(tree_hash "$HOME/.data/")" = "$before" ] || die "migration result wrong"

echo "== a private key where a public key belongs"
mkdir -p "$T/keys"; ssh-keygen -q -t ed25519 -N "" -f "$T/keys/id_test"
cp "$T/keys/id_test" "$T/keys/id_test.pub"
ls -A "$HOME/.ssh" > "$T/ssh.before"
expect_exit 2 "$BERTH" --store "$STORE" keys import "$T/keys/id_test.pub"
one_line; expect_in "holds a PRIVATE key" "$out"
ls -A "$HOME/.ssh" | diff - "$T/ssh.before" || die "keys import wrote something"
expect_exit 2 "$BERTH" --store "$STORE" keys import /etc/hostname
one_line; expect_in "is not an SSH key" "$out"

echo "== unknown commands, flags and config"
expect_exit 2 "$BERTH" presist init; one_line; expect_in "did you mean '"'"'persist'"'"'" "$out"
expect_exit 2 "$BERTH" persist stauts; one_line; expect_in "did you mean '"'"'berth persist status'"'"'" "$out"
expect_exit 2 "$BERTH" persist status --frobnicate; one_line
mkdir -p "$HOME/.config/berth"; printf "plan = \"platinum\"\n" > "$T/bad.toml"
BERTH_CONFIG=$T/bad.toml expect_exit 2 "$BERTH" config show; one_line; expect_in "plan must be" "$out"
printf "stroe = 1\n" > "$T/bad.toml"
BERTH_CONFIG=$T/bad.toml expect_exit 2 "$BERTH" doctor; one_line; expect_in "did you mean '"'"'store'"'"'" "$out"
expect_exit 2 "$BERTH" perms explain 9z9; one_line
echo "bad input: every case refused with one line, nothing changed"
' "$0"
