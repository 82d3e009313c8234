"""The layering of the packages, stated once and checked on every import in the source tree.

    core                          the leaf: records, identities, signatures, the wire schema
    ranking, routing, accel       the algorithms: the leaf only
    reputation                    rules over rankings: the leaf and ranking
    consensus                     the ledger's rules: the leaf, ranking, reputation, routing's graders
    node                          the daemon: everything above, never the public face
    testnet                       node processes on loopback: the daemon and below
    swarm                         the public face: the SDK (client, types, errors) on the leaf alone;
                                  the CLI and calibration on top of everything
    bench                         benchmarks, on top

Imports inside functions count too: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OURS = ("core", "ranking", "routing", "accel", "reputation", "consensus", "node", "swarm", "testnet", "bench")
ALGORITHMS = {"core", "ranking", "routing", "accel", "reputation", "consensus"}
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "ranking": {"core"},
    "routing": {"core"},
    "accel": {"core"},
    "reputation": {"core", "ranking"},
    "consensus": {"core", "ranking", "reputation", "routing"},
    "node": ALGORITHMS,
    "testnet": ALGORITHMS | {"node"},
    "swarm": ALGORITHMS | {"node", "testnet"},
    "bench": set(OURS),
}
SDK = ("swarm/__init__.py", "swarm/client.py", "swarm/types.py", "swarm/errors.py")


def _imports(path: Path, package: str) -> set[str]:
    """The top-level packages of ours that `path`, a module of `package`, imports."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            found.add(package if node.level else (node.module or "").split(".")[0])
    return {name for name in found if name in OURS and name != package}


def _sources(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package", OURS)
def test_each_package_imports_only_the_layers_below_it(package: str) -> None:
    wrong = {
        str(path.relative_to(ROOT)): sorted(_imports(path, package) - ALLOWED[package])
        for path in _sources(package)
    }
    assert {path: names for path, names in wrong.items() if names} == {}


def test_the_sdk_stands_on_the_leaf_alone() -> None:
    wrong = {path: sorted(_imports(ROOT / path, "swarm") - {"core"}) for path in SDK}
    assert {path: names for path, names in wrong.items() if names} == {}


def test_the_rules_and_the_sdk_load_without_the_network_or_the_daemon() -> None:
    # What the static check can't see: a third-party import that drags the network library in.
    code = (
        "import sys, consensus, reputation, ranking, routing.router, accel, swarm\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('libp2p', 'node', 'trio', 'fastapi')))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == "[]"


def test_the_check_sees_a_lazy_wrong_import_and_not_a_relative_one(tmp_path: Path) -> None:
    source = tmp_path / "probe.py"
    source.write_text("import numpy\ndef f():\n    from node import daemon\n    from . import schedule\n")
    assert _imports(source, "ranking") == {"node"}
