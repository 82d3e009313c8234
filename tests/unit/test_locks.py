from pathlib import Path

import pytest

from node.locks import LockHeld, PidLock


def test_a_held_lock_refuses_a_second_holder_and_names_the_first(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    with PidLock(path):
        with pytest.raises(LockHeld) as held, PidLock(path):
            pass
        assert held.value.holder.isdigit()
    with PidLock(path):  # released on exit
        pass
    assert oct(path.stat().st_mode & 0o777) == oct(0o600)
