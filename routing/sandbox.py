"""Untrusted Python run isolated with bubblewrap (`bwrap`, Debian's `bubblewrap`).

A sandbox sees /usr and the interpreter's own installation read-only, a
/proc of its own processes, a minimal /dev, an empty /tmp of bounded size and
the few files its caller binds in read-only: nothing else of the host, so no
data dir, no `identity.key`, no home. It has namespaces of its own for users,
processes, network, IPC, host name and cgroups: inside, it is uid 65534 with no
capabilities and may not make more user namespaces; it reaches no network, not
even the host's loopback; it sees and can signal no process outside itself;
and it dies with its bwrap. The interpreter runs with `-I -S`: no environment,
no site-packages, only the standard library.

Where bwrap is missing or cannot build a sandbox, the code is refused with
`SandboxUnavailable`, never run unisolated.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

TMP_BYTES = 16 << 20
# The top-level directories the interpreter's loader may go through; on a merged /usr they are links into it.
_SYSTEM_DIRS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
_NAMESPACES = (
    "--unshare-all",  # pid, network, IPC, UTS, cgroup (and user, made explicit next)
    "--unshare-user",
    "--uid",
    "65534",
    "--gid",
    "65534",
    "--disable-userns",
    "--cap-drop",
    "ALL",
    "--die-with-parent",
    "--new-session",  # no controlling terminal to push keystrokes into
)


class SandboxUnavailable(RuntimeError):
    """Untrusted code can't be isolated here, so it is not run at all; the message says what to install."""


def ensure_available() -> None:
    """SandboxUnavailable, saying what to install, unless untrusted code can be run isolated here."""
    _prepared()


def python_command(script: str, args: Sequence[str], *, binds: Mapping[str, Path]) -> list[str]:
    """The command that runs `script` (a path inside the sandbox) with `args` in a fresh sandbox, where
    `binds` maps each path inside to the host file or directory shown there read-only."""
    sandbox, python = _prepared()
    shown = [arg for inside, host in binds.items() for arg in ("--ro-bind", str(host), inside)]
    return [*sandbox, *shown, *python, script, *args]


def _prepared() -> tuple[tuple[str, ...], tuple[str, ...]]:
    bwrap = shutil.which("bwrap")  # looked up every time: one installed later is found without a restart
    if bwrap is None:
        raise SandboxUnavailable(
            "untrusted code is only run isolated, with bubblewrap, and `bwrap` is not on the PATH: "
            "install it (Debian: apt-get install bubblewrap; scripts/setup.sh does when run as root)"
        )
    return _sandbox(bwrap)


@functools.cache
def _sandbox(bwrap: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The bwrap command up to the caller's binds, and the interpreter's command line inside; checked once
    per process by starting one (a kernel that refuses the namespaces keeps refusing them)."""
    interpreter = Path(os.path.realpath(sys.executable))  # the real executable, not a venv's link to it
    prefix = Path(os.path.realpath(sys.base_prefix))
    if Path.home().resolve().is_relative_to(prefix):
        # Showing the installation would show the home inside it, data dir and all.
        raise SandboxUnavailable(f"Python is installed in {prefix}, which holds the home directory")
    sandbox = [bwrap, *_NAMESPACES, "--ro-bind", "/usr", "/usr"]
    for name in _SYSTEM_DIRS:
        path = Path("/", name)
        if path.is_symlink():
            sandbox += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            sandbox += ["--ro-bind", str(path), str(path)]
    if not prefix.is_relative_to("/usr"):
        sandbox += ["--ro-bind", str(prefix), str(prefix)]
    sandbox += ["--proc", "/proc", "--dev", "/dev", "--size", str(TMP_BYTES), "--tmpfs", "/tmp"]
    python = ("--chdir", "/tmp", str(interpreter), "-I", "-S")
    try:
        run = subprocess.run(
            [*sandbox, *python, "-c", "pass"],
            env={},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SandboxUnavailable(f"bwrap cannot build a sandbox here: {exc}") from None
    if run.returncode != 0:
        said = run.stderr.decode(errors="replace").strip() or f"exit status {run.returncode}"
        raise SandboxUnavailable(f"bwrap cannot build a sandbox here: {said}")
    return tuple(sandbox), python
