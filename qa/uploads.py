"""Save uploaded article files into the articles folder: safe names, checked contents, no silent overwrite.

An upload is checked before it lands: a supported type, within the size limit, and readable by the
same code that indexes the folder (so a broken JSON or an empty page is refused with the reason).
It is written under a hidden temporary name and linked into place, which fails rather than
replace a file that appeared meanwhile. Nothing is ever written outside the articles folder.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
import threading
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from .articles import SUFFIXES, load_file
from .errors import ArticleError

logger = logging.getLogger(__name__)

MAX_UPLOAD_BYTES = 5 * 2**20
MAX_NAME_CHARS = 80
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
_RESERVED = ("README", "LICENSE")  # the folder reader skips these names: such uploads are renamed
_lock = threading.Lock()  # one upload at a time picks its name within this process


@dataclass(frozen=True)
class Saved:
    """What became of one uploaded file."""

    original: str  # the name it was uploaded with
    name: str  # its file name in the articles folder
    status: str  # "added", "renamed" (a different file had the name) or "unchanged" (the same file is there)
    articles: int  # articles found in it

    def message(self) -> str:
        if self.status == "unchanged":
            return f"{self.original}: already in the articles folder as {self.name} (unchanged)."
        count = f"{self.articles} article{'s' if self.articles != 1 else ''}"
        if self.status == "renamed":
            return f"{self.original}: a different file named {self.original} exists; saved as {self.name} ({count})."
        return f"{self.original}: saved as {self.name} ({count})."


def safe_name(original: str) -> str:
    """A plain file name for an upload: no folders, no hidden or reserved names, ASCII letters only.

    Raises:
        ArticleError: the type is not one the articles folder reads.
    """
    base = unicodedata.normalize("NFKC", original).replace("\\", "/").rsplit("/", 1)[-1].strip()
    stem, dot, suffix = base.rpartition(".")
    suffix = f".{suffix.lower()}" if dot else ""
    if suffix not in SUFFIXES:
        shown = f"'{suffix}' files" if suffix else "files without an extension"
        raise ArticleError(f"{shown} are not articles; upload {', '.join(sorted(SUFFIXES))} files.")
    stem = _UNSAFE.sub("-", unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode())
    stem = re.sub(r"-{2,}", "-", stem).strip(".-_")[:MAX_NAME_CHARS].strip(".-_") or "article"
    if stem.upper().startswith(_RESERVED):
        stem = f"upload-{stem}"
    return stem + suffix


def save_upload(source: Path, original: str, folder: Path, max_bytes: int = MAX_UPLOAD_BYTES) -> Saved:
    """Check the uploaded file at `source` and save it into `folder` under a safe name.

    Raises:
        ArticleError: wrong type, too large, unreadable, or no article in it (the message says which).
    """
    name = safe_name(original)
    size = Path(source).stat().st_size
    if size > max_bytes:
        raise ArticleError(f"the file is {size / 2**20:.1f} MiB; uploads are limited to {max_bytes / 2**20:.0f} MiB.")
    content = Path(source).read_bytes()
    articles = _check(content, name)
    folder = Path(folder).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    with _lock:
        target, status = _place(folder, name, content)
        if status != "unchanged":
            _write_new(target, content)
    logger.info("upload %s -> %s (%s, %d bytes)", name, target.name, status, size)
    return Saved(original=Path(original.replace("\\", "/")).name, name=target.name, status=status, articles=articles)


def _check(content: bytes, name: str) -> int:
    """The number of articles in the file, read exactly as the folder reader will read it."""
    with tempfile.TemporaryDirectory(prefix="qa-upload-") as scratch:
        path = Path(scratch) / name
        path.write_bytes(content)
        articles, _ = load_file(path, name)
    return len(articles)


def _place(folder: Path, name: str, content: bytes) -> tuple[Path, str]:
    """Where the upload goes: its own name, or the next free `name-2.ext` when another file has it."""
    stem, suffix = name[: -len(Path(name).suffix)], Path(name).suffix
    for number in range(1, 1000):
        target = folder / (name if number == 1 else f"{stem}-{number}{suffix}")
        if target.resolve().parent != folder:  # a symlink pointing elsewhere: never write through it
            continue
        if not target.exists() and not target.is_symlink():
            return target, "added" if number == 1 else "renamed"
        if target.is_file() and not target.is_symlink() and target.read_bytes() == content:
            return target, "unchanged"
    raise ArticleError(f"too many files named like {name} in the articles folder; rename the file and try again.")


def _write_new(target: Path, content: bytes) -> None:
    """Write `content` to a hidden temporary file, then link it to `target` (fails if it exists)."""
    handle, temporary = tempfile.mkstemp(prefix=".upload-", suffix=".part", dir=target.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(content)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, 0o644)
        try:
            os.link(temporary, target)
        except FileExistsError:
            raise ArticleError(f"{target.name} appeared in the articles folder meanwhile; upload again.") from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
