"""The SQLite opener: owner-only files, the database's and its -wal and -shm, whatever the umask or an
earlier run left; WAL mode and the synchronous level asked for."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest

from core.storage import open_sqlite

FILES = ("data.db", "data.db-wal", "data.db-shm")


def modes(folder: Path) -> dict[str, int]:
    return {file.name: stat.S_IMODE(file.stat().st_mode) for file in folder.iterdir()}


@pytest.mark.usefixtures("wide_umask")
def test_the_database_its_wal_and_shm_and_its_folder_are_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "store" / "data.db"
    db = open_sqlite(path, synchronous="FULL")
    db.execute("CREATE TABLE t (x)")
    db.execute("INSERT INTO t VALUES (1)")
    assert modes(path.parent) == dict.fromkeys(FILES, 0o600)
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    db.close()


@pytest.mark.usefixtures("wide_umask")
def test_files_an_earlier_run_left_wider_are_made_owner_only(tmp_path: Path) -> None:
    # A process killed with its database open leaves the -wal and -shm behind, here 0644 from the umask.
    path = tmp_path / "data.db"
    killed = (
        "import os, sqlite3, sys\n"
        "db = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "db.execute('PRAGMA journal_mode=WAL')\n"
        "db.execute('CREATE TABLE t (x)')\n"
        "db.execute('INSERT INTO t VALUES (1)')\n"
        "os._exit(0)\n"
    )
    subprocess.run([sys.executable, "-c", killed, str(path)], check=True)
    assert modes(tmp_path) == dict.fromkeys(FILES, 0o644)
    db = open_sqlite(path, synchronous="FULL")
    assert db.execute("SELECT x FROM t").fetchall() == [(1,)]
    assert modes(tmp_path) == dict.fromkeys(FILES, 0o600)
    db.close()


@pytest.mark.parametrize(("synchronous", "level"), [("NORMAL", 1), ("FULL", 2)])
def test_the_journal_is_a_wal_synced_as_asked(tmp_path: Path, synchronous: str, level: int) -> None:
    db = open_sqlite(tmp_path / "data.db", synchronous=synchronous)  # type: ignore[arg-type]
    assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert db.execute("PRAGMA synchronous").fetchone() == (level,)
    assert db.isolation_level is None  # autocommit: the caller writes BEGIN ... COMMIT
    db.close()
