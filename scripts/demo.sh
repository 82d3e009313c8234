#!/usr/bin/env bash
# The main job, from nothing: set up, start a node on the default model, ask it a question, stop it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# shellcheck disable=SC1091
. .venv/bin/activate

question=${1:-"What is the capital of France?"}
model=${SWARM_DEMO_MODEL:-$(python -c "from swarm.config import DEFAULT_MODEL; print(DEFAULT_MODEL)")}
port=$(python -c 'from testnet.process import free_port; print(free_port())')
data_dir=$(mktemp -d)
trap 'kill "$node_pid" 2>/dev/null; wait "$node_pid" 2>/dev/null; rm -rf "$data_dir"' EXIT

swarm node start --model "$model" --port "$port" --data-dir "$data_dir/node" > "$data_dir/node.log" 2>&1 &
node_pid=$!
for _ in $(seq 600); do
  curl -fs "http://127.0.0.1:$port/health" > /dev/null 2>&1 && break
  kill -0 "$node_pid" 2>/dev/null || { cat "$data_dir/node.log" >&2; exit 1; }
  sleep 0.2
done
echo "Q: $question"
swarm ask --node "http://127.0.0.1:$port" "$question"
