"""llama.cpp's own HTTP server in a process of its own, to stand in for `vllm serve` in tests.

It speaks the same OpenAI-compatible API on 127.0.0.1 (/health,
/v1/chat/completions, /v1/completions) and runs on CPU, so the supervised
engine is tested against a real server and a real model.
"""

from __future__ import annotations

import argparse
import threading

import xllamacpp


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, help="path to a .gguf file")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ctx", type=int, default=1024, help="context length in tokens")
    args = parser.parse_args()
    params = xllamacpp.CommonParams()
    params.model.path = args.model
    params.n_ctx = args.ctx
    params.verbosity = -1
    params.port = args.port
    # Serves HTTP from its own threads for as long as the object lives.
    _server = xllamacpp.Server(params)
    print(f"serving {args.model} on 127.0.0.1:{args.port}", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
