"""Saving uploaded articles: safe names, inside the articles folder only, never a silent overwrite."""

from __future__ import annotations

from pathlib import Path

import pytest

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
        ("Résumé des faits 2025!.json", "Resume-des-faits-2025.json"),
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
    assert (saved.name, saved.status) == ("story-2.txt", "renamed")
    assert "a different file named story.txt exists; saved as story-2.txt" in saved.message()
    assert (folder / "story.txt").read_bytes().startswith(b"Old story")


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
    assert saved.name == "story-2.txt" and outside.read_text() == "keep me"


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
