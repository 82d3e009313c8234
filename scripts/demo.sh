#!/usr/bin/env bash
# The main job, from nothing: set up, start a local 3-node swarm (one model per node), ask node-0 a
# question that only node-2's model answers (forwarded over libp2p), then stop the swarm.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# shellcheck disable=SC1091
. .venv/bin/activate

question=${1:-"What is the capital of France?"}
dir=$(mktemp -d)
trap 'swarm testnet down --dir "$dir" || true; rm -rf "$dir"' EXIT

swarm testnet up --nodes 3 --dir "$dir"
gateway=$(python -c 'import json, sys; print(json.load(open(sys.argv[1]))[0]["url"])' "$dir/testnet.json")
model=$(python -c 'import json, sys; print(json.load(open(sys.argv[1]))[2]["models"][0])' "$dir/testnet.json")
echo
swarm models --node "$gateway"
echo
echo "asking node-0 ($gateway) for $model, which only node-2 hosts:"
echo "Q: $question"
swarm ask --node "$gateway" --model "$model" "$question"
