"""Runs in the grading sandboxes (routing.sandbox, routing.grading.run_tests); the standard library only,
since a sandbox sees no project package.

    harness.py serve ENTRY_POINT LIMITS   runs the code under test, then answers calls to ENTRY_POINT
    harness.py check ENTRY_POINT LIMITS FD  runs the item's tests, calling the code through the pipe FD
                                            (calls) and stdin (results); prints PASSED once `check` returned

The two run in separate sandboxes, and only plain data crosses between them
(None, bools, numbers, strings, bytes, and lists, tuples, sets and dicts of
them): the code under test never holds the tests' objects, nor they its own.
An object equal to everything can't cross, a rebound builtin or exit hook stays
in the code's own interpreter, and whatever the code does to its process
(exits with any status, kills it, prints anything) only stops its answers,
which fails the tests.
"""

from __future__ import annotations

import json
import os
import resource
import sys
from collections.abc import Callable
from typing import Any, BinaryIO

PASSED = b"passed\n"
MAX_MESSAGE = 1 << 20
# Where each sandbox is shown its files: the code's sandbox its program, the tests' sandbox the rest.
CODE_DIR, TESTS_DIR = "/sandbox/code", "/sandbox/tests"
PROGRAM, PROMPT, TESTS = "program.py", "prompt.py", "tests.py"

# Containers go as {"tag": [items]}: a tuple comes back a tuple, not a list, and keys need not be text.
_TAGS: tuple[tuple[type, str], ...] = (
    (list, "list"),
    (tuple, "tuple"),
    (set, "set"),
    (frozenset, "frozenset"),
)
_RESTORE: dict[str, Callable[[Any], object]] = {
    "list": list,
    "tuple": tuple,
    "set": set,
    "frozenset": frozenset,
    "dict": dict,
    "bytes": bytes.fromhex,
    "complex": lambda parts: complex(*parts),
}


class CodeFailed(Exception):
    """The code under test raised, stopped answering, or answered with something that is not plain data."""


def encode(value: object) -> object:
    """`value` as JSON; TypeError for anything that is not plain data."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, dict):
        return {"dict": [[encode(k), encode(v)] for k, v in value.items()]}
    if isinstance(value, (bytes, bytearray)):
        return {"bytes": bytes(value).hex()}
    if isinstance(value, complex):
        return {"complex": [value.real, value.imag]}
    for kind, tag in _TAGS:
        if isinstance(value, kind):
            return {tag: [encode(v) for v in value]}
    raise TypeError(f"a {type(value).__name__} is not plain data")


def _restore(tagged: dict[str, Any]) -> object:
    ((tag, items),) = tagged.items()  # anything but one known tag is not ours: ValueError
    return _RESTORE[tag](items)


def send(out: BinaryIO, message: object) -> None:
    out.write(json.dumps(message).encode() + b"\n")
    out.flush()


def receive(source: BinaryIO) -> Any:
    """The next message, or CodeFailed at the end of the pipe or past MAX_MESSAGE."""
    line = source.readline(MAX_MESSAGE + 1)
    if not line.endswith(b"\n"):
        raise CodeFailed(
            "the code under test stopped answering" if len(line) <= MAX_MESSAGE else "reply too long"
        )
    try:
        return json.loads(line, object_hook=_restore)
    except Exception as exc:  # whatever the bytes make json or a tag's type raise
        raise CodeFailed(f"a reply that is not plain data: {exc!r}") from None


class Remote:
    """Stands in for the function under test: arguments go to the other sandbox, the result comes back."""

    def __init__(self, calls: BinaryIO, results: BinaryIO) -> None:
        self.calls, self.results = calls, results

    def __call__(self, *args: object, **kwargs: object) -> object:
        send(self.calls, [encode(args), encode(kwargs)])
        reply = receive(self.results)
        if not (isinstance(reply, list) and len(reply) == 2 and reply[0] in ("returned", "raised")):
            raise CodeFailed("a reply out of protocol")
        if reply[0] == "raised":
            raise CodeFailed(f"the code under test raised {reply[1]}")
        return reply[1]


def _channel(read_fd: int, write_fd: int) -> tuple[BinaryIO, BinaryIO]:
    """The two ends as files on descriptors of their own; stdin, stdout and stderr then read and write
    nothing, so that what the running code prints can't mix into the messages."""
    reading, writing = os.fdopen(os.dup(read_fd), "rb"), os.fdopen(os.dup(write_fd), "wb")
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    return reading, writing


def _limit(limits: list[list[int]]) -> None:
    # Soft = hard: nothing run after this can raise them again.
    for which, value in limits:
        resource.setrlimit(which, (value, value))


def _run(path: str, namespace: dict[str, Any]) -> None:
    with open(path, encoding="utf-8") as f:
        exec(compile(f.read(), path, "exec"), namespace)


def serve(entry_point: str) -> None:
    calls, results = _channel(0, 1)
    namespace: dict[str, Any] = {"__name__": "__main__"}
    _run(f"{CODE_DIR}/{PROGRAM}", namespace)  # raising or exiting here ends the answers before the first one
    function = namespace[entry_point]
    for line in calls:
        args, kwargs = json.loads(line, object_hook=_restore)
        try:
            reply = ["returned", encode(function(*args, **kwargs))]
        except BaseException as exc:  # SystemExit too: an exit is the code's answer, and a wrong one
            reply = ["raised", type(exc).__name__]
        send(results, reply)


def check(entry_point: str, calls_fd: int) -> None:
    results, verdict = _channel(0, 1)
    candidate = Remote(os.fdopen(calls_fd, "wb"), results)
    namespace: dict[str, Any] = {"__name__": "__main__"}
    _run(f"{TESTS_DIR}/{PROMPT}", namespace)  # its helpers, which the tests may call
    namespace[entry_point] = candidate  # a test may name the function instead of `candidate`
    _run(f"{TESTS_DIR}/{TESTS}", namespace)
    namespace["check"](candidate)
    verdict.write(PASSED)
    verdict.flush()


def main(argv: list[str]) -> None:
    role, entry_point, limits, *rest = argv
    _limit(json.loads(limits))
    if role == "serve":
        serve(entry_point)
    else:
        check(entry_point, int(rest[0]))


if __name__ == "__main__":
    main(sys.argv[1:])
