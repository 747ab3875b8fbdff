#!/bin/bash
# Seconds from a fresh clone to a served page with `make run`, and what it installed.
#   bash bench/make_run_time.sh [COMMIT] [PIP_CACHE_DIR] [PORT]
# An empty PIP_CACHE_DIR measures a cold package cache; run again with the same one for a warm one.
set -u
repo=$(cd "$(dirname "$0")/.." && pwd)
commit=${1:-HEAD}; cache=${2:-$(mktemp -d)}; port=${3:-8390}
dir=$(mktemp -d)/clone
git clone -q "$repo" "$dir" && git -C "$dir" checkout -q "$commit"
mkdir -p "$cache"
start=$(date +%s.%N)
(cd "$dir" && PIP_CACHE_DIR=$cache setsid make run PORT=$port S3_PORT=$((port + 1)) > "$dir/../run.log" 2>&1 & echo $! > "$dir/../pid")
until curl -sf -o /dev/null "http://127.0.0.1:$port/"; do
  kill -0 "$(cat "$dir/../pid")" 2>/dev/null || { echo "make run exited:"; tail -5 "$dir/../run.log"; exit 1; }
  sleep 0.5
done
end=$(date +%s.%N)
tensorflow=$("$dir/.venv/bin/python" -c 'import importlib.util as u; print(u.find_spec("tensorflow") is not None)')
echo "commit $commit: served after $(echo "$end - $start" | bc) s; .venv $(du -sm "$dir/.venv" | cut -f1) MB; TensorFlow installed: $tensorflow"
kill -- -"$(cat "$dir/../pid")" 2>/dev/null
