#!/usr/bin/env bash
# Encryption at rest, as a user meets it: a first save makes an encrypted repository whose key
# is a file here; `repo init` with a passphrase from the environment; the storage holds no file
# name or content in the clear (and an unencrypted repository, the control, does); a wrong or
# missing passphrase exits 5 and changes nothing; keys added and changed; a lost key file is a
# clear error; `repo info`.
source "$(dirname "$0")/lib.sh"
export HOME=$T/home XDG_DATA_HOME=$T/data XDG_CACHE_HOME=$T/cache XDG_CONFIG_HOME=$T/config
mkdir -p "$HOME" "$T/work/notebooks"
unset BERTH_REPO_PASSWORD BERTH_REPO_PASSWORD_FILE BERTH_REPO_PASSWORD_COMMAND BERTH_REPO_KEY_FILE || true
echo "print('PLAINTEXT-MARKER-in-a-notebook')" > "$T/work/notebooks/very-private-name.py"
python3 -c "import os; open('$T/work/weights.bin','wb').write(os.urandom(2<<20))"
files_hash() { find "$1" -type f ! -name lock -printf '%P %s\n' -exec sha256sum {} \; | sort | sha256sum; }
no_plaintext() { # the storage, read as the host would, holds no name or content of the work
  ! grep -rqa -e very-private-name -e PLAINTEXT-MARKER "$1"
}
# No terminal, ever: berth must not hang waiting for one.
run() { setsid -w "$BERTH" "$@" < /dev/null; }

echo "== the first save makes an encrypted repository; its key is a file here, 0600"
R=$T/repo
run save "$T/work" --repo "$R" > "$T/s1.out" 2> "$T/s1.err" || die "save: $(cat "$T/s1.err")"
expect_in "its key is in" "$(cat "$T/s1.err")"
id=$(python3 -c "import json,sys; j=json.load(open(sys.argv[1])); assert j['version']==2 and j['encryption']=='aes-256-gcm', j; print(j['id'])" "$R/config.json")
kf=$XDG_CONFIG_HOME/berth/repo-keys/$id.json
[ "$(stat -c %a "$kf")" = 600 ] || die "the key file is not 0600"
no_plaintext "$R" || die "a file name or content is readable in the encrypted repository"
run restore latest "$T/back" --repo "$R" > /dev/null
[ "$(tree_hash "$T/work")" = "$(tree_hash "$T/back")" ] || die "the round trip differs"
run --json repo info --repo "$R" | python3 -c "
import json,sys; d=json.load(sys.stdin)
assert d['encryption']=='aes-256-gcm' and d['format']==2 and d['chunk_names']=='hmac-sha256', d
assert d['snapshots']==1 and d['key_file'].endswith('$id.json') and d['passphrase_keys']==[], d"

echo "== without its key file the repository does not open, and says where the key belongs"
mv "$kf" "$T/key.bak"
expect_exit 1 run snapshots --repo "$R"
expect_in "its key is not on this machine" "$out"
expect_in "$kf" "$out"
BERTH_REPO_KEY_FILE=$T/key.bak run snapshots --repo "$R" > /dev/null || die "BERTH_REPO_KEY_FILE was not used"
mv "$T/key.bak" "$kf"

echo "== the control: an unencrypted repository shows the same work in the clear"
run repo init --no-encryption --repo "$T/plain" > /dev/null
run save "$T/work" --repo "$T/plain" > /dev/null
no_plaintext "$T/plain" && die "the plaintext check cannot see plaintext: it tests nothing"
run --json repo info --repo "$T/plain" | grep -q '"encryption": *"none"' || die "info of a plain repository"

echo "== repo init with a passphrase from a file: no key file; the passphrase opens it"
P=$T/prepo
printf 'correct horse battery\n' > "$T/pass"
export BERTH_REPO_PASSWORD_FILE=$T/pass
run repo init --repo "$P" > "$T/init.out" || die "repo init: $(cat "$T/init.out")"
expect_in "sealed by your passphrase" "$(cat "$T/init.out")"
pid_=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['id'])" "$P/config.json")
[ ! -e "$XDG_CONFIG_HOME/berth/repo-keys/$pid_.json" ] || die "a key file was made beside the passphrase"
expect_exit 2 run repo init --repo "$P"
expect_in "already" "$out"
run save "$T/work" --repo "$P" > /dev/null || die "save with the passphrase"
no_plaintext "$P" || die "plaintext in the passphrase repository"
grep -rqa "correct horse" "$P" "$XDG_CONFIG_HOME" "$XDG_DATA_HOME" "$XDG_CACHE_HOME" && die "the passphrase was written somewhere"

echo "== a wrong passphrase, or none: exit 5, nothing read or written"
before=$(files_hash "$P")
printf 'wrong horse\n' > "$T/wrong"
BERTH_REPO_PASSWORD_FILE=$T/wrong expect_exit 5 run save "$T/work" --repo "$P"
expect_in "wrong passphrase" "$out"
BERTH_REPO_PASSWORD_FILE=$T/wrong expect_exit 5 run restore latest "$T/nope" --repo "$P"
[ ! -e "$T/nope" ] || die "a restore with a wrong passphrase wrote something"
(unset BERTH_REPO_PASSWORD_FILE; expect_exit 5 run snapshots --repo "$P"; expect_in "BERTH_REPO_PASSWORD_FILE" "$out") \
  || die "no passphrase was not a clear error"
[ "$(files_hash "$P")" = "$before" ] || die "a failed open changed the repository"
BERTH_REPO_PASSWORD_COMMAND="cat $T/pass" BERTH_REPO_PASSWORD_FILE= run snapshots --repo "$P" > /dev/null \
  || die "BERTH_REPO_PASSWORD_COMMAND was not used"

echo "== keys: add a second passphrase, change one, list them"
printf 'second staple\n' > "$T/pass2"
BERTH_REPO_NEW_PASSWORD_FILE=$T/pass2 run repo key add --repo "$P" > /dev/null || die "key add"
[ "$(run repo key list --repo "$P" | wc -l)" = 2 ] || die "two keys expected"
BERTH_REPO_PASSWORD_FILE=$T/pass2 run snapshots --repo "$P" > /dev/null || die "the added passphrase does not open it"
printf 'third battery\n' > "$T/pass3"
BERTH_REPO_NEW_PASSWORD_FILE=$T/pass3 run repo key passwd --repo "$P" > /dev/null || die "key passwd"
BERTH_REPO_PASSWORD_FILE=$T/pass expect_exit 5 run snapshots --repo "$P"
BERTH_REPO_PASSWORD_FILE=$T/pass3 run snapshots --repo "$P" > /dev/null || die "the changed passphrase does not open it"
[ "$(BERTH_REPO_PASSWORD_FILE=$T/pass3 run repo key list --repo "$P" | wc -l)" = 2 ] || die "passwd should replace, not add"
BERTH_REPO_PASSWORD_FILE=$T/pass3 run restore latest "$T/back2" --repo "$P" > /dev/null
[ "$(tree_hash "$T/work")" = "$(tree_hash "$T/back2")" ] || die "the round trip after key changes differs"

echo "== a key-file repository gets a passphrase too, and then opens without the file"
unset BERTH_REPO_PASSWORD_FILE
BERTH_REPO_NEW_PASSWORD_FILE=$T/pass2 run repo key add --repo "$R" > /dev/null || die "key add to a key-file repository"
mv "$kf" "$T/key.bak"
BERTH_REPO_PASSWORD_FILE=$T/pass2 run snapshots --repo "$R" > /dev/null || die "the passphrase does not open the key-file repository"
echo OK
