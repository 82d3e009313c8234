from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from node import catalog
from node.catalog import CatalogEntry, CatalogError


def _entry(tmp: Path, parts: list[bytes], *, module: str = "json") -> CatalogEntry:
    data = b"".join(parts)
    paths = []
    for i, part in enumerate(parts):
        path = tmp / f"part{i}"
        path.write_bytes(part)
        paths.append(path)
    return CatalogEntry(
        name="tiny",
        pip="pip install tiny==1",
        filename="tiny.gguf",
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        chat=True,
        locate=lambda entry, cache, on_progress: catalog._assemble(
            paths, cache / entry.filename, entry, on_progress
        ),
    )


def test_chunks_are_assembled_once_and_verified(tmp_path: Path) -> None:
    entry = _entry(tmp_path, [b"abc" * 1000, b"def" * 1000])
    cache = tmp_path / "cache"
    path = entry.locate(entry, cache, None)
    assert path.read_bytes() == b"abc" * 1000 + b"def" * 1000
    assert sorted(p.name for p in cache.iterdir()) == ["tiny.gguf", "tiny.gguf.verified"]
    assert entry.locate(entry, cache, None) == path


def test_assembly_and_check_report_growing_byte_counts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(catalog, "CHUNK", 1000)  # chunks of 1 kB: several reports from a small file
    entry = _entry(tmp_path, [b"abc" * 1000, b"def" * 1000])
    seen: list[tuple[str, int, int]] = []
    entry.locate(entry, tmp_path / "cache", lambda *report: seen.append(report))
    chunks = range(1000, 7000, 1000)
    assert seen == [("assembling tiny", n, 6000) for n in chunks] + [
        ("checking tiny", n, 6000) for n in chunks
    ]
    seen.clear()
    entry.locate(entry, tmp_path / "cache", lambda *report: seen.append(report))
    assert seen == []  # assembled and stamped: nothing to wait for


def test_a_tampered_cached_file_is_refused(tmp_path: Path) -> None:
    entry = _entry(tmp_path, [b"abc" * 1000])
    cache = tmp_path / "cache"
    path = entry.locate(entry, cache, None)
    path.write_bytes(b"abd" * 1000)  # same size, other bytes: the stamp no longer matches the mtime
    with pytest.raises(CatalogError, match="sha256"):
        entry.locate(entry, cache, None)


def test_wrong_size_is_refused_and_leaves_no_partial_file(tmp_path: Path) -> None:
    entry = _entry(tmp_path, [b"abc" * 1000])
    bad = CatalogEntry(**{**entry.__dict__, "size": entry.size + 1})
    cache = tmp_path / "cache"
    with pytest.raises(CatalogError, match="refusing to serve it"):
        bad.locate(bad, cache, None)
    assert list(cache.iterdir()) == []


def test_missing_package_names_the_pip_command() -> None:
    entry = CatalogEntry(
        "ghost",
        "pip install ghost-model==9",
        "g.gguf",
        1,
        "0" * 64,
        True,
        lambda e, c, p: catalog._package_dir("no_such_module_here", e),
    )
    with pytest.raises(CatalogError, match=r"model 'ghost' is not installed: pip install ghost-model==9"):
        entry.locate(entry, Path("/nonexistent"), None)


def test_unknown_name_lists_what_is_known() -> None:
    with pytest.raises(CatalogError) as unknown:
        catalog.resolve("gpt-17")
    assert "smollm2-135m-instruct" in str(unknown.value) and ".gguf" in str(unknown.value)


def test_a_file_that_is_not_gguf_is_a_clear_error(tmp_path: Path) -> None:
    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"not a model")
    with pytest.raises(CatalogError, match="not a readable GGUF file"):
        catalog.resolve(str(fake))


def test_catalog_names_resolve_to_verified_files(tmp_path: Path) -> None:
    resolved = catalog.resolve("smollm2-135m-instruct", tmp_path)
    assert resolved.chat and resolved.path.stat().st_size == catalog.CATALOG["smollm2-135m-instruct"].size
    assert not catalog.CATALOG["gemma3-270m"].chat  # the base model gets completion prompts
