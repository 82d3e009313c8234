"""One way to open a node's SQLite files: owner-only, in WAL mode, with the durability the caller asks for."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path
from typing import Literal

Synchronous = Literal["OFF", "NORMAL", "FULL", "EXTRA"]
SIDECARS = ("-wal", "-shm")  # the files SQLite keeps beside a database in WAL mode


def open_sqlite(path: Path, *, synchronous: Synchronous) -> sqlite3.Connection:
    """Open the database at `path`, creating it and its folder (0700), in WAL mode and autocommit (the caller
    writes its own BEGIN ... COMMIT); the database and its -wal and -shm files are 0600."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # Neither a tight umask nor a chmod after SQLite makes the -wal and -shm: the umask is the whole
    # process's, so setting it races every other thread that creates a file, and a chmod after the fact
    # leaves a moment in which another user may open the files and keep them open. Instead the database
    # is 0600 before SQLite opens it (created so, the umask can only narrow that, and chmod'ed for a file
    # that was there or came out narrower), and SQLite creates the -wal and -shm with the database's own
    # mode, whatever the umask (os_unix.c, robust_open). SQLite changes no mode of a -wal or -shm that a
    # crash left behind, so those are chmod'ed before it opens them.
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    for file in (path, *(path.with_name(path.name + suffix) for suffix in SIDECARS)):
        with contextlib.suppress(FileNotFoundError):
            file.chmod(0o600)
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA synchronous={synchronous}")
    return db
