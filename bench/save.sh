#!/usr/bin/env bash
# "Save my work", side by side: berth save against the physical floor (`cp -a`), tar+gzip (the
# seed's way), tar+zstd, rsync, restic and borg, on the same synthetic deep-learning workspace
# (../shared/bench) and the same day of work: full, touch 1%, 10 MiB inside a checkpoint, edit
# 1%, nothing changed, restore all. Every command ends with `sync` (its writes are on disk, as
# berth's are when it returns); the page cache is dropped before each (root). Wall time and
# repository growth per step, then berth's ratio to each, the floor first.
# Usage: bash bench/save.sh [scale] [path/to/berth]   (scale 1.0 is ~3.4 GB; default 0.25)
# BENCH_TOOLS="cp tar+zstd restic borg berth" picks the tools (default: all).
# Needs python3-numpy, restic, borgbackup, rsync, zstd (scripts/setup.sh installs them).
set -euo pipefail
SCALE=${1:-0.25}
BERTH=$(realpath "${2:-$(dirname "$0")/../build/berth}")
SHARED=$(realpath "$(dirname "$0")/../../shared/bench")
W=${BENCH_DIR:-$(mktemp -d /tmp/berth-bench-save-XXXXXX)}
trap 'rm -rf "$W"' EXIT
export HOME=$W/home XDG_DATA_HOME=$W/xdg XDG_CACHE_HOME=$W/cache NO_COLOR=1
export RESTIC_PASSWORD=bench BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes BORG_RELOCATED_REPO_ACCESS_IS_OK=yes
mkdir -p "$HOME"
PY=/usr/bin/python3
echo "generating the workspace (scale $SCALE)..." >&2
"$PY" "$SHARED/gen_workspace.py" "$W/ws" "$SCALE"
WS_BYTES=$(du -sb "$W/ws" | cut -f1)

drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null && CACHE=cold || CACHE=warm; }
now() { date +%s.%N; }
size_of() { du -sb "$1" 2>/dev/null | cut -f1; }

# save TOOL STEP: runs one save, prints "seconds bytes_grown"
save() {
  local tool=$1 step=$2 R=$W/repo/$1 t0 t1 before after
  mkdir -p "$R"; before=$(size_of "$R")
  drop_caches; t0=$(now)
  case $tool in
    tar+gzip) tar -czf "$R/$step.tar.gz" -C "$W/ws" . ;;
    tar+zstd) tar -cf - -C "$W/ws" . | zstd -3 -q -T0 -o "$R/$step.tar.zst" ;;
    rsync)    rsync -a --delete "$W/ws/" "$R/mirror/" ;;
    restic)   [ -f "$R/config" ] || restic -r "$R" init -q >/dev/null; restic -r "$R" backup -q "$W/ws" >/dev/null ;;
    borg)     [ -f "$R/config" ] || borg init -e none "$R" >/dev/null; borg create "$R::$step" "$W/ws" ;;
    berth)    "$BERTH" save "$W/ws" --repo "$R" >/dev/null ;;
    cp)       rm -rf "$R/copy"; cp -a "$W/ws" "$R/copy" ;;   # the floor: read all, write all
  esac
  sync; t1=$(now); after=$(size_of "$R")
  echo "$(echo "$t1 - $t0" | bc) $((after - before))"
}

restore() {
  local tool=$1 R=$W/repo/$1 out=$W/out/$1 t0 t1
  rm -rf "$out"; mkdir -p "$out"
  drop_caches; t0=$(now)
  case $tool in
    tar+gzip) tar -xzf "$(ls -t "$R"/*.tar.gz | head -1)" -C "$out" ;;
    tar+zstd) zstd -d -q -c "$(ls -t "$R"/*.tar.zst | head -1)" | tar -xf - -C "$out" ;;
    rsync)    rsync -a "$R/mirror/" "$out/" ;;
    restic)   restic -r "$R" restore latest -q --target "$out" >/dev/null ;;
    borg)     (cd "$out" && borg extract "$R::$(borg list --short "$R" | tail -1)") ;;
    berth)    "$BERTH" restore latest "$out" --repo "$R" >/dev/null ;;
    cp)       cp -a "$R/copy/." "$out/" ;;
  esac
  sync; t1=$(now)
  echo "$(echo "$t1 - $t0" | bc) 0"
}

read -r -a TOOLS <<<"${BENCH_TOOLS:-cp tar+gzip tar+zstd rsync restic borg berth}"
for t in "${TOOLS[@]}"; do command -v "${t%%+*}" >/dev/null || [ "$t" = berth ] || { echo "bench: $t missing" >&2; exit 1; }; done
drop_caches   # once here, so CACHE says which it is (subshells below cannot set it)
declare -A RES
STEPS=(full touch1pct ckpt10mb edit1pct unchanged restore)
for step in "${STEPS[@]}"; do
  case $step in
    full|unchanged|restore) ;;
    *) "$PY" "$SHARED/mutate.py" "$W/ws" "$step" >/dev/null ;;
  esac
  sleep 1.1   # several tools compare whole-second timestamps
  for t in "${TOOLS[@]}"; do
    if [ "$step" = restore ]; then RES[$t,$step]=$(restore "$t"); else RES[$t,$step]=$(save "$t" "$step"); fi
    echo "  $step $t: ${RES[$t,$step]}" >&2
  done
done

echo
echo "workspace: $(numfmt --to=iec "$WS_BYTES"), page cache: $CACHE; seconds / bytes the repository grew"
printf "%-10s" step; for t in "${TOOLS[@]}"; do printf " %20s" "$t"; done; echo
for step in "${STEPS[@]}"; do
  printf "%-10s" "$step"
  for t in "${TOOLS[@]}"; do
    read -r s b <<<"${RES[$t,$step]}"
    printf " %20s" "$(printf '%.2fs' "$s")/$(numfmt --to=iec "$b")"
  done
  echo
done
echo
echo "berth / peer (time; < 1 is faster). cp is the floor for full and restore (for the other"
echo "steps it copies everything again, so it is no floor there). Targets: full <= 1.4x cp,"
echo "restore <= 1.15x cp, unchanged <= 0.1 s, ckpt10mb <= 0.5x restic's time."
printf "%-10s" step; for t in "${TOOLS[@]}"; do [ "$t" = berth ] || printf " %10s" "$t"; done; echo
for step in "${STEPS[@]}"; do
  read -r bs bb <<<"${RES[berth,$step]}"
  printf "%-10s" "$step"
  for t in "${TOOLS[@]}"; do
    [ "$t" = berth ] && continue
    read -r s b <<<"${RES[$t,$step]}"
    printf " %10s" "$(printf "%.2f" "$(echo "scale=4; $bs / $s" | bc)")x"
  done
  echo
done
read -r _ bb <<<"${RES[berth,ckpt10mb]}"
echo "ckpt10mb: berth stored $(numfmt --to=iec "$bb") for 10 MiB changed ($(echo "scale=2; $bb / 10485760" | bc)x)"
