#!/usr/bin/env bash
# Saving to an S3 bucket, side by side: berth's s3: repositories against restic's s3: backend,
# both encrypted, on the same synthetic workspace (../shared/bench) and the same steps as
# bench/repo_ssh.sh: full save, 10 MiB inside a checkpoint, 1% of files edited, nothing
# changed, full restore. The server is s3rver (npm, build/npm) on
# loopback, so the numbers are CPU and protocol, not a network; s3rver itself (Node.js, one
# thread, a file per object) is part of what both tools wait for. Besides the time: how much
# the bucket grew, per tool.
# Usage: bash bench/repo_s3.sh [scale] [path/to/berth]   (default scale 0.1, ~340 MB)
set -euo pipefail
SCALE=${1:-0.1}
BERTH=$(realpath "${2:-$(dirname "$0")/../build/berth}")
SHARED=$(realpath "$(dirname "$0")/../../shared/bench")
S3RVER=${S3RVER:-$(realpath "$(dirname "$0")/../build/npm/node_modules/.bin/s3rver")}
[ -x "$S3RVER" ] || { echo "bench: s3rver missing (bash scripts/setup.sh installs it)" >&2; exit 1; }
command -v restic >/dev/null || { echo "bench: restic missing" >&2; exit 1; }
W=$(mktemp -d /tmp/berth-bench-s3-XXXXXX)
export HOME=$W/home XDG_DATA_HOME=$W/xdg XDG_CACHE_HOME=$W/cache XDG_CONFIG_HOME=$W/config NO_COLOR=1
export RESTIC_PASSWORD=bench AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER
mkdir -p "$HOME" "$W/s3"
port=$(python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
# TLS, as every real endpoint: restic's S3 client signs plain-HTTP uploads as aws-chunked
# streams, which s3rver stores undecoded; over HTTPS it sends whole bodies, as berth does.
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$W/key.pem" -out "$W/cert.pem" -days 1 \
  -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 2>/dev/null
export AWS_CA_BUNDLE=$W/cert.pem
"$S3RVER" -d "$W/s3" -a 127.0.0.1 -p "$port" --silent --key "$W/key.pem" --cert "$W/cert.pem" \
  --configure-bucket bench > "$W/s3rver.log" 2>&1 & s3pid=$!
trap 'kill $s3pid 2>/dev/null || true; rm -rf "$W"' EXIT
for i in $(seq 1 200); do curl -s --cacert "$W/cert.pem" "https://127.0.0.1:$port/" >/dev/null 2>&1 && break; sleep 0.1; done
PY=/usr/bin/python3
echo "generating the workspace (scale $SCALE)..." >&2
"$PY" "$SHARED/gen_workspace.py" "$W/ws" "$SCALE"
WS_BYTES=$(du -sb "$W/ws" | cut -f1)
now() { date +%s.%N; }
drop() { sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true; }
B="s3:https://127.0.0.1:$port/bench/berth"
RR="s3:https://127.0.0.1:$port/bench/restic"
grew() { du -sb "$W/s3/bench/$1" 2>/dev/null | cut -f1 || echo 0; }
run() { # TOOL STEP -> seconds
  local tool=$1 step=$2 t0 t1
  drop; t0=$(now)
  case $tool,$step in
    berth,restore) rm -rf "$W/out"; "$BERTH" restore latest "$W/out" --repo "$B" >/dev/null ;;
    berth,*)       "$BERTH" save "$W/ws" --repo "$B" >/dev/null 2>&1 ;;
    restic,restore) rm -rf "$W/out"; restic --cacert "$W/cert.pem" -r "$RR" restore latest -q --target "$W/out" >/dev/null ;;
    restic,*)      restic --cacert "$W/cert.pem" -r "$RR" cat config >/dev/null 2>&1 || restic --cacert "$W/cert.pem" -r "$RR" init -q >/dev/null
                   restic --cacert "$W/cert.pem" -r "$RR" backup -q "$W/ws" >/dev/null ;;
  esac
  sync; t1=$(now)
  echo "$t1 - $t0" | bc
}
declare -A RES ADD
STEPS=(full ckpt10mb edit1pct unchanged restore)
for step in "${STEPS[@]}"; do
  case $step in full|unchanged|restore) ;; *) "$PY" "$SHARED/mutate.py" "$W/ws" "$step" >/dev/null ;; esac
  sleep 1.1
  for t in berth restic; do
    before=$(grew "$t")
    RES[$t,$step]=$(run "$t" "$step")
    ADD[$t,$step]=$(( $(grew "$t") - before ))
    echo "  $step $t: ${RES[$t,$step]}s, bucket +${ADD[$t,$step]}" >&2
  done
done
echo
echo "workspace: $(numfmt --to=iec "$WS_BYTES") into an S3 bucket (s3rver on loopback); seconds, and what the bucket grew"
printf "%-10s %18s %18s %12s\n" step berth restic "berth/restic"
for step in "${STEPS[@]}"; do
  bs=${RES[berth,$step]}; rs=${RES[restic,$step]}
  printf "%-10s %18s %18s %12s\n" "$step" \
    "$(printf "%.2fs" "$bs")/$(numfmt --to=iec "${ADD[berth,$step]}")" \
    "$(printf "%.2fs" "$rs")/$(numfmt --to=iec "${ADD[restic,$step]}")" \
    "$(printf "%.2fx" "$(echo "scale=4; $bs / $rs" | bc)")"
done
echo "target: time <= 0.5x restic"
