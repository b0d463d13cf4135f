"""The index folder's files: the write lock, generation names, and the SHA-256 checksums the manifest keeps.

A write never touches the files a reader uses: each generation writes its files under new names
(`vectors-<generation>.faiss` or `.delta.npz`, `lexical-<generation>/`), each first as `name.tmp`, flushed to disk,
then renamed, and the manifest keeps the checksum of every file in use, so a damaged or swapped
file is noticed when it is loaded.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import BusyError, StoreError


@contextlib.contextmanager
def write_lock(folder: Path) -> Iterator[None]:
    """Hold the write lock of the index in `folder`, or raise BusyError at once if another process holds it.

    The holder's pid is written over the lock file in place (padded, never truncated first), so
    a second process reading it finds the previous or the current holder, not an empty file.
    """
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / ".lock"
    try:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError as error:
        if error.errno != errno.ELOOP:
            raise
        raise StoreError(
            f"The lock file {path} is a symbolic link, which the index never follows. "
            "Delete that link, then run this again."
        ) from None
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BusyError(
                f"The index in {folder} is being updated by {_lock_holder(descriptor)}. "
                "Wait for that build to finish, then run this again."
            ) from None
        os.pwrite(descriptor, f"process {os.getpid()}".ljust(32).encode(), 0)
        yield
    finally:
        os.close(descriptor)


def _lock_holder(descriptor: int) -> str:
    """Who holds the lock, as written in the lock file; a brand-new file may need a moment."""
    for _ in range(20):
        holder = os.pread(descriptor, 64, 0).decode(errors="replace").strip()
        if holder:
            return holder
        time.sleep(0.025)
    return "another process"


def next_generation(index_dir: Path, manifest: dict[str, Any]) -> int:
    """One more than the current generation and than any file left by a killed or lost build."""
    found = [int(manifest.get("generation", 0))]
    for path in [*index_dir.glob("vectors-*"), *index_dir.glob("lexical-*")]:
        number = path.name.split("-", 1)[1].split(".", 1)[0]
        found += [int(number)] if number.isdigit() else []
    return max(found) + 1


def forget_old_files(index_dir: Path, *current: str) -> None:
    """Delete the FAISS files and BM25 folders that are not among `current` (and leftovers of killed builds)."""
    for path in [*index_dir.glob("vectors-*"), *index_dir.glob("lexical-*")]:
        if path.name not in current:
            with contextlib.suppress(OSError):
                shutil.rmtree(path) if path.is_dir() else path.unlink()


def synced_digest(path: Path) -> str:
    """Flush `path` to disk and return its SHA-256 (hex)."""
    with open(path, "rb") as handle:
        checksum = hashlib.file_digest(handle, "sha256").hexdigest()
        os.fsync(handle.fileno())
    return checksum


def signature(manifest: dict[str, Any], name: str) -> str:
    """The checksums of the files of folder `name`, as one string: what identifies its content."""
    kept: dict[str, str] = manifest.get("checksums") or {}
    return ",".join(f"{key}={value}" for key, value in sorted(kept.items()) if key.startswith(name + "/"))


def checksum_problem(index_dir: Path, manifest: dict[str, Any], name: str) -> str | None:
    """What is wrong with the file or folder `name` against the manifest's checksums, or None.

    None too for an index written before checksums were kept.
    """
    kept: dict[str, str] = manifest.get("checksums") or {}
    expected = {key: value for key, value in kept.items() if key == name or key.startswith(name + "/")}
    if not kept:
        return None
    path = index_dir / name
    found = sorted(path.iterdir()) if path.is_dir() else [path] if path.exists() else []
    names = {item.relative_to(index_dir).as_posix() for item in found}
    if missing := sorted(set(expected) - names):
        return f"{missing[0]} is missing"
    if extra := sorted(names - set(expected)):
        return f"{extra[0]} is not part of this index"
    for key, checksum in expected.items():
        try:
            with open(index_dir / key, "rb") as handle:
                if hashlib.file_digest(handle, "sha256").hexdigest() != checksum:
                    return f"{key} does not match its checksum"
        except OSError as error:
            return f"{key} cannot be read ({error.strerror or error})"
    return None
