"""Reading an articles folder: every format, metadata, encodings, and bad files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qa.articles import load_folder
from qa.errors import ConfigError
from tests.conftest import BBC_NEWS


def by_id(folder: Path) -> dict:
    return {article.article_id: article for article in load_folder(folder).articles}


def test_reads_every_supported_format_with_its_metadata(articles: Path) -> None:
    found = by_id(articles)
    assert set(found) == {
        "venezuela-maduro-us-negotiations.txt",
        "ecb-rates.md",
        "glacier-study.json",
        "briefs.jsonl#rail-strike",
        "briefs.jsonl#chess-prodigy",
        "lighthouse.html",
    }
    seed = found["venezuela-maduro-us-negotiations.txt"]
    assert seed.title == "Venezuela’s Maduro Opens Door to U.S. Negotiations Amid Military Pressure"
    assert seed.text.startswith("In a surprising shift of tone")
    ecb = found["ecb-rates.md"]
    assert ecb.title == "ECB holds interest rates at 2.5% as inflation cools"
    assert (ecb.url, ecb.date, ecb.author, ecb.publisher) == (
        "https://example.org/news/ecb-holds-rates", "2025-03-06", "Anna Keller", "Example Wire"
    )
    assert "url:" not in ecb.text and ecb.text.startswith("The European Central Bank")
    glacier = found["glacier-study.json"]
    assert glacier.date == "2024-10-01" and glacier.publisher == "Example Science Desk"
    assert found["briefs.jsonl#chess-prodigy"].url == "https://example.org/sport/chess"


def test_html_gives_main_text_title_date_and_url_without_page_furniture(articles: Path) -> None:
    page = by_id(articles)["lighthouse.html"]
    assert page.title == "Historic lighthouse restored on Scottish island"
    assert page.date == "2024-05-17"
    assert page.url == "https://example.org/uk/lighthouse-restored"
    assert "Muckle Flugga" in page.text
    assert "Cookie settings" not in page.text and "Home" not in page.text.split()


def test_txt_metadata_lines_after_the_title_are_not_text(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text(
        "Storm closes ports\nurl: https://example.org/storm\ndate: 12 March 2025\nauthor: J. Doe\n\n"
        "Ports closed on Tuesday.\n"
    )
    article = by_id(tmp_path)["a.txt"]
    assert (article.title, article.url, article.date, article.author) == (
        "Storm closes ports", "https://example.org/storm", "2025-03-12", "J. Doe"
    )
    assert article.text == "Ports closed on Tuesday."


def test_a_body_line_that_looks_like_a_key_is_still_text(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("Title here\n\nNote: the minister resigned.\n")
    assert by_id(tmp_path)["a.txt"].text == "Note: the minister resigned."


def test_non_utf8_text_is_decoded_with_a_warning(tmp_path: Path) -> None:
    (tmp_path / "latin.txt").write_bytes("Prices rise\n\nA pint now costs £4.50 in the café.".encode("cp1252"))
    folder = load_folder(tmp_path)
    assert "£4.50" in folder.articles[0].text and "café" in folder.articles[0].text
    assert [p.source for p in folder.problems] == ["latin.txt"]
    assert not folder.problems[0].skipped and "not UTF-8" in folder.problems[0].reason


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("empty.txt", b"", "empty"),
        ("blank.md", b"  \n\n \n", "empty"),
        ("image.txt", bytes(range(256)) * 4, "binary"),
        ("broken.json", b'{"title": "x", "text": ', "malformed JSON"),
        ("list.json", b'["a", "b"]', "one object"),
        ("notext.json", b'{"title": "only a title"}', "no 'text'"),
        ("bad.jsonl", b"not json\n{]\n", "no usable article"),
        ("huge-number.json", b'{"title": "x", "text": "y", "n": ' + b"1" * 5000 + b"}", "number in the JSON is too"),
    ],
)
def test_bad_files_are_skipped_by_name_and_the_rest_still_read(
    tmp_path: Path, name: str, content: bytes, reason: str
) -> None:
    (tmp_path / "good.txt").write_text("Good article\n\nSome text.")
    (tmp_path / name).write_bytes(content)
    folder = load_folder(tmp_path)
    assert [a.article_id for a in folder.articles] == ["good.txt"]
    assert len(folder.problems) == 1
    assert folder.problems[0].source == name and folder.problems[0].skipped
    assert reason in folder.problems[0].reason


def test_a_bad_jsonl_line_is_reported_with_its_line_number_and_the_others_kept(tmp_path: Path) -> None:
    lines = [json.dumps({"title": "One", "text": "First."}), "{oops", json.dumps({"title": "Three", "text": "Third."})]
    (tmp_path / "feed.jsonl").write_text("\n".join(lines))
    folder = load_folder(tmp_path)
    assert [a.article_id for a in folder.articles] == ["feed.jsonl:1", "feed.jsonl:3"]
    assert [p.source for p in folder.problems] == ["feed.jsonl:2"]


def test_a_jsonl_file_of_many_bad_lines_gets_a_short_report_and_is_read_no_further(tmp_path: Path) -> None:
    from qa.articles import MAX_BAD_LINES, REASONS_SHOWN

    (tmp_path / "good.txt").write_text("Good article\n\nSome text.")
    (tmp_path / "junk.jsonl").write_text("{oops " + "x" * 300 + "\n" * 2 + "{oops\n" * 40_000)  # 400 kB, no article
    folder = load_folder(tmp_path)
    assert [a.article_id for a in folder.articles] == ["good.txt"]
    [problem] = folder.problems
    assert problem.source == "junk.jsonl" and len(problem.reason) < 1_000
    assert problem.reason.startswith("no usable article in this JSON Lines file: line 1: malformed JSON")
    assert problem.reason.endswith(
        f"; {MAX_BAD_LINES - REASONS_SHOWN} more bad lines; stopped reading at line {MAX_BAD_LINES + 1}"
    )


def test_a_jsonl_file_with_some_bad_lines_keeps_its_articles_and_counts_the_rest(tmp_path: Path) -> None:
    from qa.articles import MAX_BAD_LINES, REASONS_SHOWN

    good = [json.dumps({"title": f"Story {n}", "text": f"Text {n}."}) for n in range(3)]
    lines = [good[0], *["{oops"] * 10, good[1], *["{oops"] * MAX_BAD_LINES, good[2]]
    (tmp_path / "feed.jsonl").write_text("\n".join(lines))
    folder = load_folder(tmp_path)
    assert [a.title for a in folder.articles] == ["Story 0", "Story 1"]  # the last one is after the limit
    assert [p.source for p in folder.problems] == [f"feed.jsonl:{n}" for n in range(2, 2 + REASONS_SHOWN)] + [
        "feed.jsonl"
    ]
    assert folder.problems[-1].reason == (
        f"{MAX_BAD_LINES - REASONS_SHOWN} more bad lines; stopped reading at line {MAX_BAD_LINES + 2}"
    )


def test_hidden_unsupported_and_readme_files_are_ignored(tmp_path: Path) -> None:
    (tmp_path / ".draft.txt").write_text("Hidden\n\ntext")
    (tmp_path / "photo.jpg").write_bytes(b"\xff\xd8\xff")
    (tmp_path / "README.md").write_text("# About this folder\n\nNotes.")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "nested.txt").write_text("Nested\n\ntext")
    folder = load_folder(tmp_path)
    assert [a.article_id for a in folder.articles] == ["sub/nested.txt"] and not folder.problems


def test_a_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_folder(tmp_path / "nowhere")


def test_reading_never_changes_the_files(articles: Path) -> None:
    before = {p: p.read_bytes() for p in articles.rglob("*") if p.is_file()}
    load_folder(articles)
    assert {p: p.read_bytes() for p in articles.rglob("*") if p.is_file()} == before


@pytest.mark.skipif(BBC_NEWS is None, reason="needs BBC_NEWS_DIR: the BBC News dataset's folder")
def test_the_bbc_corpus_loads_as_it_is() -> None:
    assert BBC_NEWS is not None
    folder = load_folder(BBC_NEWS / "raw")
    assert len(folder.articles) == 2225
    assert [p.source for p in folder.problems] == ["sport/199.txt"]  # the one Windows-1252 file
    assert "£" in next(a.text for a in folder.articles if a.article_id == "sport/199.txt")
