"""Read an articles folder into `Article`s: .txt/.md, .html/.htm, .json and .jsonl.

A file that cannot be read is reported as a `Problem` naming the file and why; the rest of
the folder is still read. Nothing here ever writes to the articles folder.

A long-lived reader (the `Library`) passes a `FileCache`: a file whose inode, size, modification
and status-change times are those it had when it was read is not read again; its articles come from
the cache without their bodies (`Article.without_body`), which the cache does not keep. Any write to a file
sets its status-change time (ctime) to the current time, and no tool can set it back, so an edited
file is read again even if its size and modification time are kept (`cp -p`, `touch -d`). The one
edit it could miss is a second write within the file system's clock tick after the file was read:
files changed less than `SETTLED_SECONDS` before they were read are not cached, so they are read
again on the next sync.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

from .errors import ArticleError, ConfigError
from .schema import Article, Problem

logger = logging.getLogger(__name__)

SUFFIXES = frozenset({".txt", ".md", ".html", ".htm", ".json", ".jsonl"})
MAX_FILE_BYTES = 20 * 1024 * 1024
MAX_BAD_LINES = 100  # a JSON Lines file is read no further after this many bad lines
REASONS_SHOWN = 5  # bad lines of one file reported one by one; the others are counted
META_KEYS = frozenset({"url", "link", "date", "published", "author", "by", "source", "publisher", "title"})
_DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%d %B %Y", "%d %b %Y", "%B %d, %Y", "%b %d, %Y", "%B %d %Y")


@dataclass(frozen=True)
class Folder:
    """Everything read from one articles folder: its articles, what was wrong with its files, every
    file's relative path, and the files read from disk this time (not taken from a `FileCache`) with
    their articles."""

    articles: list[Article]
    problems: list[Problem]
    files: list[str] = field(default_factory=list)
    read: list[str] = field(default_factory=list)
    fresh: list[Article] = field(default_factory=list)


SETTLED_SECONDS = 2.0  # a file changed this recently before it was read is read again next time
FileKey = tuple[int, int, int, int]  # (inode, size, mtime_ns, ctime_ns)


@dataclass
class FileCache:
    """What each file held when it was read, by relative path: (file key, articles without bodies, problems)."""

    entries: dict[str, tuple[FileKey, list[Article], list[Problem]]] = field(default_factory=dict)
    reused: int = 0  # files not read again by the last `load_folder`


def load_folder(folder: Path, cache: FileCache | None = None) -> Folder:
    """Read every supported file under `folder`, recursively, in a stable order.

    With a `cache`, files unchanged since they were cached are taken from it, not read (see above).

    Raises:
        ConfigError: the folder does not exist or is not a folder.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(
            f"The articles folder {folder} does not exist. Create it and put .txt, .md, .html, "
            ".json or .jsonl articles in it, or point QA_ARTICLES_DIR / --articles at another folder."
        )
    articles: list[Article] = []
    problems: list[Problem] = []
    files: list[str] = []
    read: list[str] = []
    fresh: list[Article] = []
    settled = time.time_ns() - int(SETTLED_SECONDS * 1e9)
    kept: dict[str, tuple[FileKey, list[Article], list[Problem]]] = {}
    reused = 0
    for path in _article_files(folder):
        relative = path.relative_to(folder).as_posix()
        files.append(relative)
        key = _file_key(path) if cache is not None else None
        if cache is not None and key is not None and (entry := cache.entries.get(relative)) and entry[0] == key:
            found, caveats = entry[1], entry[2]
            reused += 1
            kept[relative] = entry
        else:
            try:
                found, caveats = load_file(path, relative)  # read after the key was taken: never newer than it
            except ArticleError as error:
                found, caveats = [], [Problem(relative, str(error))]
            read.append(relative)
            fresh.extend(found)
            if key is not None and max(key[2], key[3]) < settled:
                kept[relative] = (key, [article.without_body() for article in found], caveats)
        articles.extend(found)
        problems.extend(caveats)
        for caveat in caveats:
            if caveat.skipped and caveat.source == relative:
                logger.warning("skipped %s: %s", relative, caveat.reason)
            else:
                logger.warning("%s", caveat)
    if cache is not None:
        cache.entries, cache.reused = kept, reused
    return Folder(articles, problems, files, read, fresh)


def _file_key(path: Path) -> FileKey | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns


def _article_files(folder: Path) -> Iterator[Path]:
    for path in sorted(folder.rglob("*")):
        parts = path.relative_to(folder).parts
        if any(part.startswith(".") for part in parts):
            continue
        if path.name.upper().startswith(("README", "LICENSE")):
            continue  # a folder's notes about itself are not articles
        if path.suffix.lower() in SUFFIXES and path.is_file():
            yield path


def load_file(path: Path, relative: str) -> tuple[list[Article], list[Problem]]:
    """Read one file into its articles, with caveats worth a warning.

    Raises:
        ArticleError: the whole file is unusable (binary, empty, malformed, too large).
    """
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise ArticleError(f"the file is {size / 1e6:.0f} MB, over the {MAX_FILE_BYTES // 2**20} MiB limit")
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise ArticleError(f"cannot be read ({error.strerror or error})") from None
    text, caveats = decode(raw, relative)
    if not text.strip():
        raise ArticleError("the file is empty")
    suffix = path.suffix.lower()
    if suffix in (".txt", ".md"):
        return [parse_text(text, relative, markdown=suffix == ".md")], caveats
    if suffix in (".html", ".htm"):
        return [parse_html(text, relative)], caveats
    if suffix == ".json":
        return [parse_record(_json_object(text), relative, relative)], caveats
    articles, problems = parse_jsonl(text, relative)
    if not articles:
        reasons = [f"line {p.source.rsplit(':', 1)[1]}: {p.reason}" if p.source != relative else p.reason
                   for p in problems]
        raise ArticleError("no usable article in this JSON Lines file: " + "; ".join(reasons))
    return articles, caveats + problems


def decode(raw: bytes, relative: str) -> tuple[str, list[Problem]]:
    """Bytes to text: UTF-8, else a detected encoding (with a caveat); binary raises."""
    if b"\x00" in raw[:8192]:
        raise ArticleError("this is a binary file, not text")
    try:
        text = raw.decode("utf-8-sig")
        caveats: list[Problem] = []
    except UnicodeDecodeError:
        text, encoding = _decode_guess(raw)
        caveats = [Problem(relative, f"not UTF-8; read as {encoding}", skipped=False)]
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if _control_share(text) > 0.1:
        raise ArticleError("this looks like a binary file: too many control characters")
    return text, caveats


def _decode_guess(raw: bytes) -> tuple[str, str]:
    """Decode bytes that are not UTF-8: Windows-1252 for mostly-ASCII text, else a detected encoding.

    A few stray high bytes in English text (a £, an é) make any detector guess wildly between
    code pages (Shift-JIS, Windows-1250...); such files are almost always Windows-1252.
    """
    high = sum(1 for byte in raw if byte >= 0x80)
    if high <= max(8, len(raw) // 50):
        with contextlib.suppress(UnicodeDecodeError):
            return raw.decode("cp1252"), "cp1252"
    from charset_normalizer import from_bytes

    best = from_bytes(raw).best()
    if best is None:
        raise ArticleError("this is a binary file or its text encoding cannot be detected")
    return str(best), best.encoding


def _control_share(text: str) -> float:
    sample = text[:8192]
    if not sample:
        return 0.0
    controls = sum(1 for char in sample if ord(char) < 32 and char not in "\n\t\f\v")
    return controls / len(sample)


def parse_text(text: str, relative: str, markdown: bool = False) -> Article:
    """A .txt/.md article: metadata lines, then the title line, then metadata lines, then the body."""
    lines = text.split("\n")
    meta: dict[str, str] = {}
    index = _read_meta(lines, 0, meta, fenced=True)
    while index < len(lines) and not lines[index].strip():
        index += 1
    if index >= len(lines):
        raise ArticleError("the file has no text")
    title = lines[index].strip()
    if markdown:
        title = title.lstrip("#").strip()
    index = _read_meta(lines, index + 1, meta, fenced=False)
    offset = sum(len(line) + 1 for line in lines[:index])
    body = text[offset:].strip()
    if not body:
        body = title  # a one-line article is its own body
    if not body:
        raise ArticleError("the file has no text")
    return _article(relative, meta.get("title") or title or body.split("\n")[0][:80], body, relative, meta)


def _read_meta(lines: list[str], index: int, meta: dict[str, str], fenced: bool) -> int:
    """Collect a block of `key: value` lines starting at `index` (blank lines before it allowed)."""
    start = index
    while index < len(lines) and not lines[index].strip():
        index += 1
    if fenced and index < len(lines) and lines[index].strip() == "---":
        end = next((i for i in range(index + 1, len(lines)) if lines[i].strip() == "---"), None)
        if end is not None:
            for line in lines[index + 1 : end]:
                if found := meta_line(line):
                    meta[found[0]] = found[1]
            return end + 1
    found = False
    while index < len(lines):
        pair = meta_line(lines[index])
        if pair is None or not pair[1] or (pair[0] == "title" and not fenced):
            break
        meta[pair[0]] = pair[1]
        found = True
        index += 1
    return index if found else start


def meta_line(line: str) -> tuple[str, str] | None:
    """(key, value) of a `key: value` line whose key is one of META_KEYS (any case); None otherwise.

    Plain string operations, no regular expression: the time is linear in the line's length.
    """
    key, colon, value = line.partition(":")
    key = key.strip().lower()
    return (key, value.strip()) if colon and key in META_KEYS else None


def parse_html(text: str, relative: str) -> Article:
    """A saved web page: main text, title, date and url by trafilatura."""
    import trafilatura

    try:
        extracted = trafilatura.extract(
            text, output_format="json", with_metadata=True, include_comments=False, favor_precision=True
        )
    except Exception as error:  # trafilatura raises assorted parser errors on broken pages
        raise ArticleError(f"the page could not be parsed as HTML ({type(error).__name__})") from None
    if not extracted:
        raise ArticleError("no article text found in this page")
    found = json.loads(extracted)
    body = (found.get("text") or "").strip()
    if not body:
        raise ArticleError("no article text found in this page")
    title = (found.get("title") or "").strip() or Path(relative).stem
    first, _, rest = body.partition("\n")
    if first.strip() == title and rest.strip():
        body = rest.strip()  # the headline is the title, not the first paragraph
    meta = {
        "url": found.get("source") or found.get("url") or "",
        "date": found.get("date") or "",
        "author": found.get("author") or "",
        "publisher": found.get("source-hostname") or found.get("hostname") or "",
    }
    return _article(relative, title, body, relative, meta)


def _json_object(text: str) -> dict[str, object]:
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as error:
        raise ArticleError(f"malformed JSON ({error})") from None
    except ValueError:  # Python refuses to convert integers of more than 4,300 digits
        raise ArticleError("a number in the JSON is too long to read (over 4,300 digits)") from None
    if not isinstance(value, dict):
        raise ArticleError("a .json article must be one object with 'title' and 'text'")
    return {key: _storable(field) if isinstance(field, str) else field for key, field in value.items()}


def _storable(text: str) -> str:
    """`text` with lone surrogates (JSON can escape them: "\\ud800") replaced by U+FFFD: only valid UTF-8 is stored."""
    return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


def parse_record(record: dict[str, object], article_id: str, relative: str) -> Article:
    """A JSON article object: `title` and `text`, optionally `url`, `date`, `author`, `source`."""
    title, body = record.get("title"), record.get("text")
    if not isinstance(body, str) or not body.strip():
        raise ArticleError("the article has no 'text' string")
    if title is not None and not isinstance(title, str):
        raise ArticleError("the article's 'title' is not a string")
    meta = {key: value for key, value in record.items() if isinstance(value, str) and key in META_KEYS}
    body = body.replace("\r\n", "\n").strip()
    return _article(article_id, (title or "").strip() or body.split("\n")[0][:80], body, relative, meta)


def parse_jsonl(text: str, relative: str) -> tuple[list[Article], list[Problem]]:
    """One article object a line; a bad line is reported and skipped, the others kept.

    The first REASONS_SHOWN bad lines are reported one by one, the others counted in one more
    problem; after MAX_BAD_LINES bad lines the rest of the file is not read.
    """
    articles: list[Article] = []
    bad: list[Problem] = []
    seen: set[str] = set()
    stopped = 0
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        where = f"{relative}:{number}"
        try:
            record = _json_object(line)
            own = record.get("id")
            article_id = f"{relative}#{own}" if isinstance(own, (str, int)) and str(own) else where
            if article_id in seen:
                raise ArticleError(f"the id {_shortened(repr(own))} is used twice in this file")
            articles.append(parse_record(record, article_id, relative))
            seen.add(article_id)
        except ArticleError as error:
            bad.append(Problem(where, str(error)))
            if len(bad) >= MAX_BAD_LINES:
                stopped = number
                break
    problems = bad[:REASONS_SHOWN]
    if len(bad) > REASONS_SHOWN:
        more = f"{len(bad) - REASONS_SHOWN} more bad lines"
        problems.append(Problem(relative, more + (f"; stopped reading at line {stopped}" if stopped else "")))
    return articles, problems


def _shortened(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _article(article_id: str, title: str, body: str, relative: str, meta: dict[str, str]) -> Article:
    return Article(
        article_id=article_id,
        title=" ".join(title.split()),
        text=body,
        source=relative,
        url=(meta.get("url") or meta.get("link") or "").strip() or None,
        date=normalize_date(meta.get("date") or meta.get("published") or ""),
        author=(meta.get("author") or meta.get("by") or "").strip() or None,
        publisher=(meta.get("source") or meta.get("publisher") or "").strip() or None,
    )


def normalize_date(value: str) -> str | None:
    """An ISO date (YYYY-MM-DD) from common written forms; None when there is none."""
    value = value.strip()
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).date().isoformat()
    except ValueError:
        pass
    for form in _DATE_FORMATS:
        try:
            return datetime.strptime(value, form).date().isoformat()
        except ValueError:
            continue
    match = re.search(r"\b(\d{4})-(\d{2})-(\d{2})\b", value)
    if match:
        try:
            return date(int(match[1]), int(match[2]), int(match[3])).isoformat()
        except ValueError:
            return None
    return None
