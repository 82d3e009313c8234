"""The table of hostile-peer holes: each `bench.attack_*` module runs its attacks for real and says,
row by row, what the attacker gained before the fix (measured once on the commit named) and now.

    python -m bench.holes

`python -m bench.attacks` prints it after the simulation. A new attack module is picked up by its
name alone.
"""

from __future__ import annotations

import importlib
import pkgutil
import textwrap
from collections.abc import Iterator, Sequence

import bench

PREFIX = "attack_"
COLUMNS = (("hole", 28), ("attack", 44), ("gained_before", 40), ("gained_after", 40))


def modules() -> list[str]:
    return sorted(
        f"bench.{info.name}" for info in pkgutil.iter_modules(bench.__path__) if info.name.startswith(PREFIX)
    )


def rows() -> Iterator[dict[str, str]]:
    for name in modules():
        yield from importlib.import_module(name).rows()


def measured(
    attacks: dict[str, tuple[str, str]],
    gained_before: dict[str, str],
    before: str,
    gained_after: dict[str, str],
) -> list[dict[str, str]]:
    """An attack module's rows: `attacks` maps a key to its (hole, attack), the gains map it to figures."""
    return [
        {
            "hole": hole,
            "attack": attack,
            "gained_before": f"{gained_before[key]} (on {before})",
            "gained_after": gained_after[key],
        }
        for key, (hole, attack) in attacks.items()
    ]


def print_rows(found: Sequence[dict[str, str]]) -> None:
    print("\nHostile peers: what each attack gained before its fix and what it gains now")
    print("  ".join(title.ljust(width) for title, width in COLUMNS))
    for row in found:
        cells = [textwrap.wrap(str(row.get(title, "")), width) or [""] for title, width in COLUMNS]
        for line in range(max(len(cell) for cell in cells)):
            print(
                "  ".join(
                    (cell[line] if line < len(cell) else "").ljust(width)
                    for cell, (_, width) in zip(cells, COLUMNS, strict=True)
                ).rstrip()
            )
        print()


def main() -> int:
    print_rows(list(rows()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
