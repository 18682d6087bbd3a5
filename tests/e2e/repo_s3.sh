#!/usr/bin/env bash
# A repository in an S3 bucket, on a real S3-compatible server started here (s3rver from the
# npm registry: it checks the access key id and SigV4's required headers, not the signature
# itself), read back by an independent client (Debian's
# rclone): byte-identical round trips, incremental saves, kill -9 mid-upload, multipart packs,
# credentials from ~/.aws/credentials, wrong credentials and a wrong passphrase refused with
# nothing written, a flipped byte in any object detected, and no plaintext in the bucket.
source "$(dirname "$0")/lib.sh"
S3RVER=${S3RVER:-$(cd "$(dirname "$0")/../.." && pwd)/build/npm/node_modules/.bin/s3rver}
[ -x "$S3RVER" ] || skip "s3rver is not installed (scripts/setup.sh puts it in build/npm)"
command -v node >/dev/null || skip "node is missing"
command -v rclone >/dev/null || skip "rclone is missing (apt install rclone)"
export HOME=$T/home XDG_DATA_HOME=$T/data XDG_CACHE_HOME=$T/cache XDG_CONFIG_HOME=$T/config
mkdir -p "$HOME" "$T/s3data"
unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_PROFILE AWS_REGION AWS_DEFAULT_REGION || true
unset AWS_CA_BUNDLE || true # rclone 1.60 cannot load a CA bundle for a plain-HTTP endpoint
port=$(python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
"$S3RVER" -d "$T/s3data" -a 127.0.0.1 -p "$port" --configure-bucket berth-test > "$T/s3rver.log" 2>&1 & s3pid=$!
trap 'kill $s3pid 2>/dev/null; cleanup' EXIT
for i in $(seq 1 200); do curl -s "http://127.0.0.1:$port/" >/dev/null 2>&1 && break; sleep 0.1; done
curl -s "http://127.0.0.1:$port/" >/dev/null || die "s3rver did not start: $(cat "$T/s3rver.log")"
# s3rver's one account, as the AWS CLI would keep it.
mkdir -p "$HOME/.aws"
printf '[default]\naws_access_key_id = S3RVER\naws_secret_access_key = S3RVER\n' > "$HOME/.aws/credentials"
R="s3:http://127.0.0.1:$port/berth-test/team/ana"
export RCLONE_CONFIG_T_TYPE=s3 RCLONE_CONFIG_T_PROVIDER=Other RCLONE_CONFIG_T_ENDPOINT=http://127.0.0.1:$port \
  RCLONE_CONFIG_T_ACCESS_KEY_ID=S3RVER RCLONE_CONFIG_T_SECRET_ACCESS_KEY=S3RVER RCLONE_CONFIG_T_FORCE_PATH_STYLE=true
run() { setsid -w "$BERTH" "$@" < /dev/null; }

mkdir -p "$T/work/notebooks"
echo "print('PLAINTEXT-MARKER')" > "$T/work/notebooks/very-private-name.ipynb"
python3 -c "import os; open('$T/work/weights.bin','wb').write(os.urandom(3<<20))"

echo "== a bucket that is not there, and wrong credentials: clear errors, nothing made"
expect_exit 1 run save "$T/work" --repo "s3:http://127.0.0.1:$port/no-such-bucket"
expect_in "NoSuchBucket" "$out"
AWS_ACCESS_KEY_ID=NOT-A-KEY AWS_SECRET_ACCESS_KEY=S3RVER expect_exit 1 run save "$T/work" --repo "$R"
expect_in "403 InvalidAccessKeyId" "$out"
expect_in "check the credentials" "$out"
expect_not_in "S3RVER" "$out"
objects=$(rclone lsf -R T:berth-test)
[ -z "$objects" ] || die "a failed save wrote to the bucket: $objects"
[ -z "$(ls "$XDG_CONFIG_HOME/berth/repo-keys" 2>/dev/null)" ] || die "a failed save left a key file"

echo "== save, restore: byte-identical; rclone sees only sealed objects"
run save "$T/work" --repo "$R" > "$T/s1.out" 2> "$T/s1.err" || die "save: $(cat "$T/s1.err")"
run restore latest "$T/back" --repo "$R" > /dev/null || die "restore"
[ "$(tree_hash "$T/work")" = "$(tree_hash "$T/back")" ] || die "the S3 round trip differs"
rclone lsf -R T:berth-test/team/ana > "$T/objects"
grep -q '^config.json$' "$T/objects" && grep -q '^snapshots/' "$T/objects" && grep -q '^data/' "$T/objects" \
  || die "rclone does not see the repository: $(cat "$T/objects")"
rclone cat T:berth-test > "$T/all"
[ "$(stat -c %s "$T/all")" -gt $((3<<20)) ] || die "rclone read too little of the bucket"
grep -qa -e very-private-name -e PLAINTEXT-MARKER "$T/all" && die "plaintext in the bucket"
grep -q very-private "$T/objects" && die "a file name in an object name"

echo "== incremental: unchanged adds nothing; a new 1 MiB file adds about 1 MiB"
run --json save "$T/work" --repo "$R" > "$T/s2.json"
python3 -c "import json; d=json.load(open('$T/s2.json')); assert d['stored_bytes']==0 and d['unchanged'], d"
python3 -c "import os; open('$T/work/new.bin','wb').write(os.urandom(1<<20))"
run --json save "$T/work" --repo "$R" > "$T/s3.json"
python3 -c "
import json; d=json.load(open('$T/s3.json')); assert (1<<20) <= d['stored_bytes'] <= 1.1*(1<<20), d"

echo "== kill -9 mid-upload (multipart packs of 8 MiB parts); the next save sends only what is missing"
python3 -c "import os; open('$T/work/huge.bin','wb').write(os.urandom(120<<20))"
BERTH_S3_PART_BYTES=$((8<<20)) run save "$T/work" --repo "$R" > /dev/null 2>&1 & spid=$!
for i in $(seq 1 3000); do [ "$(rclone lsf T:berth-test/team/ana/index | wc -l)" -ge 3 ] && break; sleep 0.05; done
kill -9 $spid 2>/dev/null || die "the save finished before the kill: nothing was tested"
wait $spid 2>/dev/null || true
BERTH_S3_PART_BYTES=$((8<<20)) run --json save "$T/work" --repo "$R" > "$T/s4.json" || die "the save after kill -9"
python3 -c "
import json; d=json.load(open('$T/s4.json')); assert 0 < d['stored_bytes'] < 110*(1<<20), d" \
  || die "the save after kill -9 resent everything: $(cat "$T/s4.json")"
grep -q "Stored part 2 of" "$T/s3rver.log" || die "no pack went up as a multipart upload"
run verify --repo "$R" > /dev/null || die "verify after kill -9"
rm -rf "$T/back"; run restore latest "$T/back" --repo "$R" > /dev/null
[ "$(tree_hash "$T/work")" = "$(tree_hash "$T/back")" ] || die "the round trip after kill -9 differs"
run prune --repo "$R" > /dev/null || die "prune"
run verify --repo "$R" > /dev/null || die "verify after prune"

echo "== a passphrase repository on S3: a wrong one exits 5 and writes nothing"
P="s3:http://127.0.0.1:$port/berth-test/pass"
printf 'right horse\n' > "$T/pass"; printf 'wrong horse\n' > "$T/wrong"
BERTH_REPO_PASSWORD_FILE=$T/pass run repo init --repo "$P" > /dev/null || die "repo init on S3"
BERTH_REPO_PASSWORD_FILE=$T/pass run save "$T/work/notebooks" --repo "$P" > /dev/null
before=$(rclone lsl T:berth-test/pass | sort)
BERTH_REPO_PASSWORD_FILE=$T/wrong expect_exit 5 run save "$T/work" --repo "$P"
[ "$(rclone lsl T:berth-test/pass | sort)" = "$before" ] || die "a wrong passphrase wrote to the bucket"

echo "== a flipped byte in any object: verify and restore notice; nothing damaged is restored"
for obj in $(rclone lsf -R --files-only T:berth-test/pass | grep -v '^config.json$' | grep -v '^keys/'); do
  rclone cat "T:berth-test/pass/$obj" > "$T/orig"
  python3 -c "
import sys; b=bytearray(open(sys.argv[1],'rb').read()); b[len(b)//2]^=1; open(sys.argv[2],'wb').write(b)" "$T/orig" "$T/bad"
  rclone copyto "$T/bad" "T:berth-test/pass/$obj"
  rm -rf "$XDG_CACHE_HOME/berth/index"
  code=0; BERTH_REPO_PASSWORD_FILE=$T/pass run verify --repo "$P" > "$T/v.out" 2>&1 || code=$?
  [ "$code" != 0 ] || die "verify missed a flipped byte in $obj"
  rm -rf "$T/r"; code=0; BERTH_REPO_PASSWORD_FILE=$T/pass run restore latest "$T/r" --repo "$P" > /dev/null 2>&1 || code=$?
  if [ "$code" = 0 ]; then cmp -s "$T/r/very-private-name.ipynb" "$T/work/notebooks/very-private-name.ipynb" || die "damaged data restored from $obj"; fi
  rclone copyto "$T/orig" "T:berth-test/pass/$obj"
done
rm -rf "$XDG_CACHE_HOME/berth/index"
BERTH_REPO_PASSWORD_FILE=$T/pass run verify --repo "$P" > /dev/null || die "the repaired bucket does not verify"

echo "== a machine saves to the bucket and restores from it itself, with the machines' profile"
if [ "$(id -u)" = 0 ] && command -v jupyter-notebook >/dev/null && unshare -m true 2>/dev/null; then
  expect_exit 2 run repo allow-machines --repo "$R"
  expect_in "no AWS profile 'berth-machines'" "$out"
  printf '[berth-machines]\naws_access_key_id = S3RVER\naws_secret_access_key = S3RVER\n' >> "$HOME/.aws/credentials"
  run repo allow-machines --repo "$R" > "$T/allow.out" || die "allow-machines: $(cat "$T/allow.out")"
  run up m1 > "$T/up.out" 2>&1 || die "up m1: $(cat "$T/up.out")"
  run ssh m1 -- "mkdir -p /notebooks/p && head -c 3000000 /dev/urandom > /notebooks/p/d.bin && echo nb > /notebooks/p/n.ipynb"
  # What a request killed with -9 would leave (credentials in a private directory): cleared.
  run ssh m1 -- "mkdir -p /dev/shm/berth-http-4000000-killed && echo secret > /dev/shm/berth-http-4000000-killed/config"
  # The laptop's own credentials are broken: only the machine, with the machines' profile, can write.
  AWS_ACCESS_KEY_ID=NOT-A-KEY AWS_SECRET_ACCESS_KEY=x run --json save m1 --repo "$R" > "$T/m1.json" 2> "$T/m1.err" \
    || die "machine-direct save to S3: $(cat "$T/m1.err")"
  mid=$(python3 -c "import json; d=json.load(open('$T/m1.json')); assert d['instance'] == 'm1', d; print(d['id'])")
  [ -z "$(run ssh m1 -- "ls /dev/shm /tmp 2>/dev/null | grep berth- || true")" ] || die "credentials stayed on the machine"
  run ssh m1 -- "echo spoiled > /notebooks/p/n.ipynb"
  run --json restore "$mid" m1 --repo "$R" > "$T/m1r.json" || die "machine-direct restore from S3"
  python3 -c "import json; d=json.load(open('$T/m1r.json')); assert d['machine_direct'], d"
  [ "$(run ssh m1 -- cat /notebooks/p/n.ipynb)" = nb ] || die "the machine-direct restore from S3 did not bring the notebook back"
  run restore "$mid" "$T/m1back" --repo "$R" > /dev/null
  cmp "$T/m1back/notebooks/p/d.bin" <(run ssh m1 -- cat /notebooks/p/d.bin) || die "the machine's S3 save differs"
  run destroy -y --force m1 > /dev/null
else
  echo "SKIP machine-direct: needs root, namespaces and jupyter-notebook (local machines)"
fi
echo OK
