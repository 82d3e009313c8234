"""Watching real node processes from a test: their Prometheus metrics, and conditions that take time."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx


def metric(url: str, name: str, **labels: str) -> float:
    """The sum of a metric's samples on the node at `url` whose labels include `labels`."""
    total = 0.0
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if (line.startswith(name + "{") or line.startswith(name + " ")) and all(
            f'{k}="{v}"' in line for k, v in labels.items()
        ):
            total += float(line.rsplit(" ", 1)[1])
    return total


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll until `condition` holds; fail the test after `timeout` seconds. Returns the seconds it took."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, f"timed out after {timeout:g} s waiting for {what}"
        time.sleep(0.1)
    return time.monotonic() - started
