"""Save uploaded article files into the articles folder: safe names, checked contents, no silent overwrite.

An upload is checked before it lands: a supported type, within the size limit, and readable by the
same code that indexes the folder (so a broken JSON or an empty page is refused with the reason).
It is written under a hidden temporary name and linked into place, which fails rather than
replace a file that appeared meanwhile. Nothing is ever written outside the articles folder.
A file system error (disk full, no hard links) becomes an `ArticleError` for that one file.
"""

from __future__ import annotations

import contextlib
import hashlib
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
MAX_NAME_BYTES = 160  # file systems allow 255 bytes a name; room for "upload-", the content hash and the suffix
HASH_CHARS = 10  # hex digits of the SHA-256 of the content in the name of a renamed upload
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
    """A plain file name for an upload: no folders, no hidden or reserved names, no control characters.

    Letters, marks and digits of any script are kept; every other run of characters becomes "-".
    The stem is cut to MAX_NAME_CHARS characters and MAX_NAME_BYTES bytes of UTF-8.

    Raises:
        ArticleError: the type is not one the articles folder reads.
    """
    base = unicodedata.normalize("NFKC", original).replace("\\", "/").rsplit("/", 1)[-1].strip()
    stem, dot, suffix = base.rpartition(".")
    suffix = f".{suffix.lower()}" if dot else ""
    if suffix not in SUFFIXES:
        shown = f"'{suffix}' files" if suffix else "files without an extension"
        raise ArticleError(f"{shown} are not articles; upload {', '.join(sorted(SUFFIXES))} files.")
    stem = "".join(char if char in "_.-" or unicodedata.category(char)[0] in "LMN" else "-" for char in stem)
    stem = re.sub(r"-{2,}", "-", stem).strip(".-_")[:MAX_NAME_CHARS]
    while len(stem.encode("utf-8")) > MAX_NAME_BYTES:
        stem = stem[:-1]
    stem = stem.strip(".-_") or "article"
    if stem.upper().startswith(_RESERVED):
        stem = f"upload-{stem}"
    return stem + suffix


def save_upload(source: Path, original: str, folder: Path, max_bytes: int = MAX_UPLOAD_BYTES) -> Saved:
    """Check the uploaded file at `source` and save it into `folder` under a safe name.

    Raises:
        ArticleError: wrong type, too large, unreadable, no article in it, or the folder refused the
            file (disk full, read-only, no hard links): the message says which.
    """
    name = safe_name(original)
    try:
        size = Path(source).stat().st_size
        if size > max_bytes:
            raise ArticleError(
                f"the file is {size / 2**20:.1f} MiB; uploads are limited to {max_bytes / 2**20:.0f} MiB."
            )
        content = Path(source).read_bytes()
        articles = _check(content, name)
        folder = Path(folder).resolve()
        folder.mkdir(parents=True, exist_ok=True)
        with _lock:
            target, status = _place(folder, name, content)
            if status != "unchanged":
                _write_new(target, content)
    except OSError as error:
        raise ArticleError(
            f"could not be saved into the articles folder ({error.strerror or error}); check that the folder is "
            "writable, on a file system with hard links, and has free space, then upload it again."
        ) from None
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
    """Where the upload goes: its own name, or `name-<content hash>.ext` when a different file has it.

    At most these two files are compared with the upload, whatever the folder holds.
    """
    suffix = Path(name).suffix
    other = f"{name[: -len(suffix)]}-{hashlib.sha256(content).hexdigest()[:HASH_CHARS]}{suffix}"
    for target, status in ((folder / name, "added"), (folder / other, "renamed")):
        if target.resolve().parent != folder:  # a symlink pointing elsewhere: never write through it
            continue
        if not target.exists() and not target.is_symlink():
            return target, status
        if _holds(target, content):
            return target, "unchanged"
    raise ArticleError(f"{name} and {other} in the articles folder hold other texts; rename the file and try again.")


def _holds(path: Path, content: bytes) -> bool:
    """Whether `path` is a plain file with exactly `content` (read only when the sizes agree)."""
    if path.is_symlink() or not path.is_file():
        return False
    return path.stat().st_size == len(content) and path.read_bytes() == content


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
