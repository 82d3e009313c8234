"""Fixtures of the unit tests."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


@pytest.fixture
def wide_umask() -> Iterator[None]:
    """A login's usual umask (0022) whatever the runner's, so a file left to the umask comes out 0644."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)
