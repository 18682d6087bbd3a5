#!/usr/bin/env bash
# `berth up` to ready (SSH answering, Jupyter answering through the tunnel) against what the
# seed has a user do instead on a machine they already have: start `jupyter notebook` by hand
# and wait for it to answer. And `berth ls` latency with three instances, against the floor of
# reading the same SQLite table with the sqlite3 shell.
# Usage: sudo bash bench/up.sh [path/to/berth]   (needs root, hyperfine, jupyter-notebook)
set -euo pipefail
BERTH=$(realpath "${1:-$(dirname "$0")/../build/berth}")
[ "$(id -u)" -eq 0 ] || { echo "bench: the local provider needs root"; exit 1; }
command -v hyperfine >/dev/null || { echo "bench: hyperfine is missing"; exit 1; }
W=$(mktemp -d /tmp/berth-bench-up-XXXXXX)
export HOME=$W/home XDG_DATA_HOME=$W/data NO_COLOR=1
mkdir -p "$HOME"
trap 'for n in b1 b2 b3 bench; do "$BERTH" destroy -y --force $n >/dev/null 2>&1 || true; done; rm -rf "$W"' EXIT

cat > "$W/jupyter-by-hand.sh" <<SH
#!/usr/bin/env bash
# the seed's step: jupyter notebook --port=8080 --allow-root --no-browser, then wait for it
port=\$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p $W/nb
jupyter-notebook --no-browser --allow-root --ip=127.0.0.1 --port=\$port --NotebookApp.token=t --notebook-dir=$W/nb >/dev/null 2>&1 &
pid=\$!
until curl -s -o /dev/null "http://127.0.0.1:\$port/api/status?token=t"; do sleep 0.05; done
kill \$pid; wait \$pid 2>/dev/null || true
SH
hyperfine -N --warmup 1 --runs 8 --export-json "$W/up.json" \
  --prepare "bash -c '$BERTH destroy -y --force bench >/dev/null 2>&1 || true'" -n "berth up (local, to ready)" "$BERTH up bench" \
  -n "jupyter notebook by hand (to answering)" "bash $W/jupyter-by-hand.sh" >/dev/null 2>&1 || true
"$BERTH" destroy -y --force bench >/dev/null 2>&1 || true
for n in b1 b2 b3; do "$BERTH" up $n >/dev/null; done
hyperfine -N --warmup 3 --runs 50 --export-json "$W/ls.json" \
  -n "berth ls (3 instances)" "$BERTH ls" \
  -n "sqlite3 select (floor)" "sqlite3 $XDG_DATA_HOME/berth/state.db 'select * from instances'" >/dev/null 2>&1 || \
hyperfine -N --warmup 3 --runs 50 --export-json "$W/ls.json" -n "berth ls (3 instances)" "$BERTH ls" >/dev/null
python3 - "$W/up.json" "$W/ls.json" <<'PY'
import json, sys
for path in sys.argv[1:]:
    res = json.load(open(path))["results"]
    base = res[0]["mean"]
    for r in res:
        print(f"  {r['command']:42s} mean {r['mean']*1e3:9.1f} ms  (first row / this: {base/r['mean']:.2f}x)")
PY
