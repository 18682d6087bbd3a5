#!/usr/bin/env bash
# The command line as a user meets it: version, help, --json that parses, config origins,
# perms explain with the right digits, exit codes.
source "$(dirname "$0")/lib.sh"
export HOME=$T/home XDG_CONFIG_HOME=$T/config
mkdir -p "$HOME"

expect_exit 0 "$BERTH" --version; expect_in "berth 0." "$out"
expect_exit 0 "$BERTH" version; expect_in "berth 0." "$out"
expect_exit 0 "$BERTH_STATIC_BINARY" version; expect_in "(static)" "$out"
[ "$(file -b "$BERTH_STATIC_BINARY" 2>/dev/null | grep -c 'statically linked')" = 1 ] ||
  ! command -v file >/dev/null || die "berth-static is not statically linked"

expect_exit 0 "$BERTH" help
for c in persist hook keys doctor perms config version help "persist restore" "keys test"; do
  expect_in "$c" "$out"
done
expect_exit 0 "$BERTH" help persist; expect_in "restore" "$out"
expect_exit 0 "$BERTH" persist --help; expect_in "status" "$out"

echo "== --json is one parseable document with a schema"
mkdir -p "$T/store"
"$BERTH" --store "$T/store" persist init >/dev/null
for cmd in "version" "config show" "persist status" "doctor" "perms explain 744" "keys list" "persist restore"; do
  rc=0; "$BERTH" --json --store "$T/store" $cmd > "$T/out.json" || rc=$?
  [ $rc -le 3 ] || die "$cmd --json exited $rc"
  python3 -c "import json,sys; d=json.load(open(sys.argv[1])); assert d[\"schema\"].startswith(\"berth.\"), d" "$T/out.json" ||
    die "berth --json $cmd: not JSON with a schema: $(cat "$T/out.json")"
done
expect_exit 2 "$BERTH" --json presist
python3 -c "import json,sys; d=json.loads(sys.argv[1].splitlines()[0]); assert d[\"error\"][\"code\"]==2" "$out"

echo "== config: each value says where it came from"
"$BERTH" config set plan growth >/dev/null
[ -f "$XDG_CONFIG_HOME/berth/config.toml" ] || die "config set did not write the XDG config file"
out=$(BERTH_QUOTA_GB=20 "$BERTH" -c keys.test_host=example.org config show)
expect_in "(file $XDG_CONFIG_HOME/berth/config.toml) plan = growth" "$out"
expect_in "(env BERTH_QUOTA_GB) quota_gb = 20" "$out"
expect_in "(command line) keys.test_host = example.org" "$out"
expect_in "(default) notebooks_dir = /notebooks" "$out"
[ "$("$BERTH" config get plan)" = growth ] || die "config get"
expect_exit 2 "$BERTH" config get plna; expect_in "did you mean 'plan'" "$out"

echo "== perms explain: r=4, w=2, x=1 (the seed says otherwise)"
expect_exit 0 "$BERTH" perms explain 744
expect_in "744 = rwxr--r--" "$out"
expect_in "owner  7 = 4 (read) + 2 (write) + 1 (execute)" "$out"
expect_in "group  4 = 4 (read)" "$out"
expect_exit 0 "$BERTH" perms explain 600 rwx------
expect_in "600 = rw-------" "$out"; expect_in "700 = rwx------" "$out"

echo "== keys import: a lone private key gets its public half; a mismatched pair is refused"
mkdir -p "$T/k"
ssh-keygen -q -t ed25519 -N "" -C lone -f "$T/k/id_lone"; rm "$T/k/id_lone.pub"
ssh-keygen -q -t ed25519 -N "" -f "$T/k/id_other"
"$BERTH" --store "$T/store" keys import "$T/k/id_lone" >/dev/null
[ -f "$HOME/.ssh/id_lone.pub" ] || die "no public key derived"
[ "$(cut -d' ' -f1,2 "$HOME/.ssh/id_lone.pub")" = "$(ssh-keygen -y -f "$T/k/id_lone" | cut -d' ' -f1,2)" ] || die "derived key differs"
[ "$(stat -L -c %a "$HOME/.ssh/id_lone")" = 600 ] || die "imported private key mode"
cp "$T/k/id_other.pub" "$T/k/id_pair.pub"; cp "$T/k/id_lone" "$T/k/id_pair"
expect_exit 2 "$BERTH" --store "$T/store" keys import "$T/k/id_pair" "$T/k/id_pair.pub"
expect_in "is not the public half" "$out"
[ ! -e "$HOME/.ssh/id_pair" ] || die "a refused import wrote the private key"

echo "== doctor: storage over the plan's quota, with the monthly overage"
head -c 3000000 /dev/urandom > "$T/store/cfg/.local/big"
rc=0; out=$("$BERTH" --store "$T/store" -c quota_gb=0.001 -c notebooks_dir=/nonexistent doctor) || rc=$?
expect_in "GB over, \$" "$out"; expect_in "per month" "$out"

echo "== exit codes: problems found is 3"
rm -f "$HOME/.jupyter"; mkdir -p "$HOME/.jupyter"
expect_exit 3 "$BERTH" --store "$T/store" persist status
expect_exit 3 "$BERTH" --store "$T/store" doctor
expect_in "fix: berth persist restore" "$out"
echo "== first use by four berths at once: one schema, no error, state.db private"
for round in $(seq 1 15); do
  d=$T/concurrent/$round; mkdir -p "$d"
  pids=()
  for i in 1 2 3 4; do XDG_DATA_HOME=$d "$BERTH" ls > "$d/out$i" 2>&1 & pids+=($!); done
  for i in 0 1 2 3; do wait "${pids[$i]}" || die "round $round: berth $((i + 1)) failed: $(cat "$d/out$((i + 1))")"; done
done
[ "$(stat -c %a "$T/concurrent/1/berth/state.db")" = 600 ] || die "state.db is $(stat -c %a "$T/concurrent/1/berth/state.db"), not 600"

echo "== shell completion and the man page come from the command table"
for sh in bash zsh fish; do
  "$BERTH" completion "$sh" > "$T/comp.$sh" || die "completion $sh"
  flag=--; [ "$sh" = fish ] && flag="-l "
  for word in up offers destroy persist "${flag}provider" "${flag}max-hours"; do grep -q -- "$word" "$T/comp.$sh" || die "$sh completion lacks $word"; done
done
bash -n "$T/comp.bash" || die "the bash completion does not parse"
out=$(bash -c "source '$T/comp.bash'; COMP_WORDS=(berth de); COMP_CWORD=1; _berth; echo \${COMPREPLY[*]}")
expect_in "destroy" "$out"
out=$(bash -c "source '$T/comp.bash'; COMP_WORDS=(berth up --prov); COMP_CWORD=2; _berth; echo \${COMPREPLY[*]}")
expect_in "--provider" "$out"
if command -v fish >/dev/null; then fish -n "$T/comp.fish" || die "the fish completion does not parse"; fi
if command -v zsh >/dev/null; then zsh -n "$T/comp.zsh" || die "the zsh completion does not parse"; fi
"$BERTH" man > "$T/berth.1"
expect_in ".TH BERTH 1" "$(cat "$T/berth.1")"
for c in $("$BERTH" help | awk '/^  [a-z]/ {print $1}'); do
  grep -qxF ".B $(sed 's/-/\\-/g' <<<"$c")" "$T/berth.1" || die "the man page lacks '$c'"
done
if command -v man >/dev/null; then MANWIDTH=80 man -l "$T/berth.1" > "$T/man.txt" 2>/dev/null && expect_in "EXIT STATUS" "$(cat "$T/man.txt")"; fi
echo "cli: ok"
