"""Saving uploaded articles: safe names, inside the articles folder only, never a silent overwrite."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from qa import Library
from qa.articles import load_folder
from qa.errors import ArticleError
from qa.uploads import safe_name, save_upload

STORY = b"Tram line opens in Leeds\nThe first tram line in Leeds opened on Saturday after four years of work.\n"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    articles = tmp_path / "library" / "articles"
    articles.mkdir(parents=True)
    return articles


def upload(tmp_path: Path, content: bytes, name: str = "upload.txt") -> Path:
    """A file as the web server receives it: somewhere in a temporary folder."""
    incoming = tmp_path / "incoming"
    incoming.mkdir(exist_ok=True)
    path = incoming / "received.bin"
    path.write_bytes(content)
    return path


@pytest.mark.parametrize(
    ("original", "expected"),
    [
        ("../../etc/cron.d/evil.txt", "evil.txt"),
        ("..\\..\\windows\\evil.md", "evil.md"),
        ("/abs/path/story.HTML", "story.html"),
        (".hidden.txt", "hidden.txt"),
        ("Résumé des faits 2025!.json", "Résumé-des-faits-2025.json"),
        ("新闻报道.txt", "新闻报道.txt"),
        ("Новости дня.md", "Новости-дня.md"),
        ("समाचार.txt", "समाचार.txt"),
        ("a\x1b[31mb\u202ec\x00d.txt", "a-31mb-c-d.txt"),
        ("..\u200f.txt", "article.txt"),
        ("新" * 100 + ".txt", "新" * 53 + ".txt"),
        ("README.md", "upload-README.md"),
        ("...txt", "article.txt"),
        ("a" * 300 + ".jsonl", "a" * 80 + ".jsonl"),
    ],
)
def test_safe_names_have_no_folders_hidden_or_reserved_parts(original: str, expected: str) -> None:
    assert safe_name(original) == expected


@pytest.mark.parametrize("original", ["tool.exe", "photo.jpg", "notes", "archive.tar.gz", "page.php"])
def test_other_types_are_refused_with_the_list_of_accepted_ones(original: str) -> None:
    with pytest.raises(ArticleError, match=r"upload \.htm, \.html, \.json, \.jsonl, \.md, \.txt files"):
        safe_name(original)


def test_an_upload_lands_in_the_articles_folder_and_nowhere_else(folder: Path, tmp_path: Path) -> None:
    saved = save_upload(upload(tmp_path, STORY), "../../../escape.txt", folder)
    assert (saved.name, saved.status, saved.articles) == ("escape.txt", "added", 1)
    assert (folder / "escape.txt").read_bytes() == STORY
    assert sorted(p.name for p in folder.parent.iterdir()) == ["articles"]
    assert [a.title for a in load_folder(folder).articles] == ["Tram line opens in Leeds"]


def test_a_different_file_with_the_same_name_is_saved_beside_it_and_says_so(folder: Path, tmp_path: Path) -> None:
    (folder / "story.txt").write_bytes(b"Old story\nSomething else entirely happened here last week.\n")
    saved = save_upload(upload(tmp_path, STORY), "story.txt", folder)
    renamed = f"story-{hashlib.sha256(STORY).hexdigest()[:10]}.txt"
    assert (saved.name, saved.status) == (renamed, "renamed")
    assert f"a different file named story.txt exists; saved as {renamed}" in saved.message()
    assert (folder / "story.txt").read_bytes().startswith(b"Old story")
    again = save_upload(upload(tmp_path, STORY), "story.txt", folder)
    assert (again.name, again.status) == (renamed, "unchanged")


def test_the_same_file_again_changes_nothing(folder: Path, tmp_path: Path) -> None:
    save_upload(upload(tmp_path, STORY), "story.txt", folder)
    again = save_upload(upload(tmp_path, STORY), "story.txt", folder)
    assert again.status == "unchanged" and "(unchanged)" in again.message()
    assert sorted(p.name for p in folder.iterdir()) == ["story.txt"]


def test_a_symlink_is_never_written_through(folder: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("keep me")
    (folder / "story.txt").symlink_to(outside)
    saved = save_upload(upload(tmp_path, STORY), "story.txt", folder)
    assert saved.name == f"story-{hashlib.sha256(STORY).hexdigest()[:10]}.txt" and outside.read_text() == "keep me"


@pytest.mark.parametrize(
    ("content", "name", "reason"),
    [
        (b"", "empty.txt", "the file is empty"),
        (b"\x00\x01\x02binary", "data.txt", "binary"),
        (b'{"title": "x"', "broken.json", "malformed JSON"),
        (b'{"title": "No text"}', "notext.json", "no 'text'"),
        (b"<html><body></body></html>", "blank.html", "no article text"),
    ],
)
def test_unreadable_uploads_are_refused_with_the_reason_and_not_saved(
    folder: Path, tmp_path: Path, content: bytes, name: str, reason: str
) -> None:
    with pytest.raises(ArticleError, match=reason):
        save_upload(upload(tmp_path, content), name, folder)
    assert list(folder.iterdir()) == []


def test_uploads_over_the_size_limit_are_refused(folder: Path, tmp_path: Path) -> None:
    with pytest.raises(ArticleError, match="limited to 1 MiB"):
        save_upload(upload(tmp_path, STORY * 20_000), "big.txt", folder, max_bytes=2**20)
    assert list(folder.iterdir()) == []


def test_uploads_with_one_non_latin_name_keep_it_and_each_compares_with_at_most_two_files(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stories = [STORY.replace(b"Leeds", f"city number {n}".encode()) for n in range(10)]
    names = [save_upload(upload(tmp_path, story), "新闻.txt", folder).name for story in stories[:9]]
    assert names[0] == "新闻.txt" and all(name.startswith("新闻-") for name in names[1:]) and len(set(names)) == 9
    read_in_folder: list[str] = []
    read_bytes = Path.read_bytes

    def counted(path: Path) -> bytes:
        if path.parent == folder:
            read_in_folder.append(path.name)
        return read_bytes(path)

    monkeypatch.setattr(Path, "read_bytes", counted)
    assert save_upload(upload(tmp_path, stories[9]), "新闻.txt", folder).status == "renamed"
    assert save_upload(upload(tmp_path, stories[5]), "新闻.txt", folder).status == "unchanged"
    assert read_in_folder == ["新闻.txt", "新闻.txt", names[5]]


def test_a_file_system_error_on_one_upload_is_a_sentence_for_that_file(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_hard_links(source: str, target: str) -> None:
        raise OSError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_hard_links)
    with pytest.raises(ArticleError, match=r"could not be saved into the articles folder \(Operation not permitted\)"):
        save_upload(upload(tmp_path, STORY), "story.txt", folder)
    assert list(folder.iterdir()) == []  # the temporary file is gone too


def test_a_batch_of_uploads_reports_each_file_and_keeps_the_saved_ones(
    faiss_library: Library, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from qa.web import ChatApp

    faiss_library.sync()
    chat = ChatApp(faiss_library, watch=None)
    articles = faiss_library.settings.articles_dir
    first, second, third = (tmp_path / name for name in ("first.txt", "second.txt", "third.txt"))
    first.write_bytes(STORY)
    second.write_bytes(STORY.replace(b"Leeds", b"York"))
    third.write_bytes(STORY.replace(b"Leeds", b"Hull"))
    real_link = os.link

    def full_for_the_second(source: str, target: str) -> None:
        if Path(target).name == "second.txt":
            raise OSError(28, "No space left on device")
        real_link(source, target)

    monkeypatch.setattr(os, "link", full_for_the_second)
    lines, changed = chat.save([str(first), str(second), str(third)])
    assert changed
    assert lines[0].startswith("✓ first.txt: saved as first.txt")
    assert lines[1].startswith("✗ second.txt: could not be saved into the articles folder")
    assert "No space left on device" in lines[1]
    assert lines[2].startswith("✓ third.txt: saved as third.txt")
    report = faiss_library.sync()  # what the page runs after a batch with a new file
    assert report.added == 2 and not (articles / "second.txt").exists()
    assert faiss_library.retrieve("tram line in Hull", k=1)[0].citation.source == "third.txt"
