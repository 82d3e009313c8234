"""The `swarm` command line: `swarm node start`, `swarm ask`, `swarm models`."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from . import config as node_config
from .client import DEFAULT_URL, Client
from .errors import SwarmError


def _add_node_start(commands: argparse._SubParsersAction) -> None:
    node = commands.add_parser("node", help="run and manage a node").add_subparsers(
        dest="node_command", required=True
    )
    start = node.add_parser("start", help="start a node that serves models over an OpenAI-compatible API")
    start.add_argument("--config", type=Path, help="TOML config file (flags override it)")
    start.add_argument(
        "--model",
        action="append",
        dest="models",
        metavar="MODEL",
        help="catalog name (smollm2-135m-instruct, gemma3-270m, qwen2.5-coder-0.5b-instruct), "
        "a .gguf path or an HF folder; repeat to host several",
    )
    start.add_argument(
        "--backend", choices=node_config.BACKENDS, help="engine for the --model options (default auto)"
    )
    start.add_argument("--url", help="openai backend: base URL of the server to use")
    start.add_argument("--context-length", type=int, help="tokens of context per request (default 2048)")
    start.add_argument("--parallel", type=int, help="requests a model generates at once (default 1)")
    start.add_argument("--threads", type=int, help="CPU threads per model (default: all cores but one)")
    start.add_argument("--host", help="address to listen on (default 127.0.0.1: this machine only)")
    start.add_argument(
        "--port", type=int, help=f"HTTP port (default {node_config.DEFAULT_PORT}; 0 picks a free one)"
    )
    start.add_argument("--data-dir", type=Path, help="the node's state directory (default ~/.swarm/node)")
    start.add_argument(
        "--cache-dir", type=Path, help="where assembled model files are kept (default ~/.cache/swarm)"
    )
    start.add_argument(
        "--api-key",
        action="append",
        dest="api_keys",
        metavar="KEY",
        help="require this bearer key on /v1 (repeatable; also SWARM_API_KEY)",
    )
    start.add_argument(
        "--max-waiting", type=int, help="requests a model queues before answering 429 (default 64)"
    )


def _node_config(args: argparse.Namespace) -> node_config.NodeConfig:
    models = None
    if args.models:
        per_model = {
            "backend": args.backend or "auto",
            "url": args.url,
            "context_length": args.context_length,
            "parallel": args.parallel,
            "threads": args.threads,
        }
        models = tuple(
            node_config.model_from_table(
                {"model": m, **{k: v for k, v in per_model.items() if v is not None}}
            )
            for m in args.models
        )
    api_keys = list(args.api_keys or [])
    if os.environ.get("SWARM_API_KEY"):
        api_keys.append(os.environ["SWARM_API_KEY"])
    return node_config.load(
        args.config,
        models=models,
        host=args.host,
        port=args.port,
        data_dir=args.data_dir,
        cache_dir=args.cache_dir,
        api_keys=api_keys or None,
        max_waiting=args.max_waiting,
    )


def _add_client_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--node", default=os.environ.get("SWARM_NODE", DEFAULT_URL), help="node URL")
    parser.add_argument(
        "--api-key", default=os.environ.get("SWARM_API_KEY"), help="bearer key, if the node needs one"
    )
    parser.add_argument("--timeout", type=float, default=300.0, help="total seconds for the call")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="swarm", description="Decentralized swarm inference.")
    commands = parser.add_subparsers(dest="command", required=True)
    _add_node_start(commands)

    ask = commands.add_parser("ask", help="ask a node a question")
    ask.add_argument("question")
    ask.add_argument("--model", help="model to ask (default: the node's first)")
    ask.add_argument("--stream", action="store_true", help="print the answer as it is generated")
    ask.add_argument("--max-tokens", type=int, default=256)
    ask.add_argument("--temperature", type=float, default=0.0)
    _add_client_options(ask)

    models = commands.add_parser("models", help="list the models a node serves")
    _add_client_options(models)
    return parser


def _ask(args: argparse.Namespace) -> int:
    with Client(args.node, api_key=args.api_key, timeout=args.timeout) as client:
        options = {"model": args.model, "max_tokens": args.max_tokens, "temperature": args.temperature}
        if args.stream:
            for chunk in client.stream_chat(args.question, **options):
                print(chunk.text, end="", flush=True)
            print()
        else:
            answer = client.chat(args.question, **options)
            print(answer.text.strip())
            if answer.usage:
                usage = answer.usage
                print(
                    f"-- {answer.model}, {usage.completion_tokens} tokens, finish: {answer.finish_reason}",
                    file=sys.stderr,
                )
    return 0


def _models(args: argparse.Namespace) -> int:
    with Client(args.node, api_key=args.api_key, timeout=args.timeout) as client:
        cards = client.models()
    print(f"{'MODEL':32} {'BACKEND':12} {'CONTEXT':>8} {'TOK/S':>7} STATE")
    for card in cards:
        rate = f"{card.tokens_per_second:.1f}" if card.tokens_per_second else "-"
        backend, context = card.backend or "-", card.context_length or 0
        print(f"{card.id:32} {backend:12} {context:>8} {rate:>7} {card.state or '-'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "node":
            from node.daemon import main as run_daemon

            return run_daemon(_node_config(args))
        if args.command == "ask":
            return _ask(args)
        return _models(args)
    except node_config.ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except SwarmError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
