"""Every test here runs real models or node processes, so every test here is slow: marked in this one place,
which a new file can't forget. `pytest -m "not slow"` is the fast loop over the pure tests."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).parent


# First, before pytest deselects by marker. The hook sees the whole session's items, not this folder's.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.slow)
