#!/usr/bin/env bash
# The main job, from nothing: set up, start a local 3-node swarm (one model per node), ask it a question
# as one model: the three experts answer, every node judges the others' answers, Bradley-Terry picks
# the winner, and the round lands in every node's ledger. Then stop the swarm.
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
echo
swarm models --node "$gateway"
echo
echo "asking the swarm through node-0 ($gateway):"
echo "Q: $question"
swarm ask --node "$gateway" --model swarm --max-tokens 64 "$question"
echo
echo "the round, as every node's ledger records it:"
sleep 2  # the entry reaches the other nodes by gossip
swarm ledger --node "$gateway" --limit 3
