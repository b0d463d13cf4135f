"""The command line, run as a user runs it: `python -m qa ...` in a real process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from qa import Library

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).parent / "fixtures" / "articles"


def qa(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QA_")}
    return subprocess.run(
        [sys.executable, "-m", "qa", *args], cwd=cwd, env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True, text=True, timeout=300,
    )


@dataclass(frozen=True)
class Indexed:
    """An articles folder, its index, and the `qa index` run that built it."""

    articles: Path
    index: Path
    run: subprocess.CompletedProcess[str]

    @property
    def folders(self) -> list[str]:
        return ["--articles", str(self.articles), "--index", str(self.index)]


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> Indexed:
    """`qa index` over the fixture articles and a broken file. The `ask` tests only read the index: one
    build serves them all."""
    root = tmp_path_factory.mktemp("cli")
    shutil.copytree(FIXTURES, root / "articles")
    (root / "articles" / "broken.json").write_text("{not json")
    built = qa("index", "--articles", str(root / "articles"), "--index", str(root / "index"))
    return Indexed(root / "articles", root / "index", built)


def test_index_then_ask_json_then_add_an_article(indexed: Indexed, tmp_path: Path) -> None:
    built = indexed.run
    assert built.returncode == 0, built.stderr
    assert "6 added, 0 updated, 0 removed, 0 unchanged" in built.stdout

    asked = qa("ask", "Who interviewed Maduro?", "--json", "--passages", "-k", "3", *indexed.folders)
    assert asked.returncode == 0, asked.stderr
    answer = json.loads(asked.stdout)
    assert answer["question"] == "Who interviewed Maduro?" and len(answer["hits"]) == 3
    top = answer["hits"][0]
    expected = {"rank", "score", "text", "article_id", "title", "source", "url", "date", "passage", "start", "end"}
    assert expected <= set(top)
    assert top["rank"] == 1 and "Ignacio Ramonet" in top["text"]
    assert top["source"] == "venezuela-maduro-us-negotiations.txt"

    articles, index = tmp_path / "articles", tmp_path / "index"  # a copy to change
    shutil.copytree(indexed.articles, articles)
    shutil.copytree(indexed.index, index)
    (articles / "harbour.txt").write_text("Harbour reopens\n\nThe harbour at Dunmore reopened on Friday.\n")
    synced = qa("index", "--articles", str(articles), "--index", str(index))
    assert "1 added, 0 updated, 0 removed, 6 unchanged; 1 passages embedded" in synced.stdout


def test_ask_prints_the_quoted_answer_then_its_numbered_sources(indexed: Indexed) -> None:
    asked = qa("ask", "Which US oil company can export Venezuelan crude?", "-k", "2", *indexed.folders)
    assert asked.returncode == 0, asked.stderr
    answer, sources = asked.stdout.split("\n\n", 1)
    assert "Chevron" in answer and answer.rstrip().endswith("]")
    assert sources.startswith("[1] Venezuela’s Maduro Opens Door")
    assert "venezuela-maduro-us-negotiations.txt, paragraph" in sources and ">>" in sources
    assert "[2] " in sources


def test_ask_json_has_the_quotes_the_sources_and_whether_it_was_found(indexed: Indexed) -> None:
    asked = qa("ask", "Who interviewed Maduro?", "--json", "-k", "3", *indexed.folders)
    assert asked.returncode == 0, asked.stderr
    answer = json.loads(asked.stdout)
    assert answer["found"] is True and len(answer["sources"]) == 3
    assert "Ramonet" in answer["quotes"][0]["text"]
    cited = answer["sources"][answer["quotes"][0]["source"] - 1]
    assert cited["text"][answer["quotes"][0]["start"] : answer["quotes"][0]["end"]] == answer["quotes"][0]["text"]


def test_ask_says_when_the_articles_do_not_cover_the_question(indexed: Indexed) -> None:
    asked = qa("ask", "How do I bake a chocolate cake?", *indexed.folders)
    assert asked.returncode == 0, asked.stderr
    assert asked.stdout.startswith("The articles don't seem to cover this.")


def test_an_empty_question_exits_2_with_a_message(tmp_path: Path) -> None:
    asked = qa("ask", "   ", "--index", str(tmp_path / "index"))
    assert asked.returncode == 2
    assert "question is empty" in asked.stderr and "Traceback" not in asked.stderr


def test_a_missing_articles_folder_exits_1_with_a_message(tmp_path: Path) -> None:
    built = qa("index", "--articles", str(tmp_path / "missing"), "--index", str(tmp_path / "index"))
    assert built.returncode == 1
    assert "does not exist" in built.stderr and "Traceback" not in built.stderr


def test_skipped_files_are_named_on_standard_error(indexed: Indexed) -> None:
    built = indexed.run
    assert built.returncode == 0
    assert "skipped: broken.json: malformed JSON" in built.stderr
    assert "1 file(s) skipped" in built.stdout


def test_ask_takes_a_mode_and_filters(indexed: Indexed) -> None:
    folders = indexed.folders
    asked = qa("ask", "strike", "--json", "--passages", "-k", "10", "--mode", "bm25", "--source", "Example Wire",
               "--date-from", "2025-06-01", *folders)
    assert asked.returncode == 0, asked.stderr
    assert {hit["article_id"] for hit in json.loads(asked.stdout)["hits"]} == {"briefs.jsonl#rail-strike"}
    wrong = qa("ask", "strike", "--date-from", "June 2025", *folders)
    assert wrong.returncode == 2 and "YYYY-MM-DD" in wrong.stderr


CONTROLS = [chr(code) for code in [*range(0x00, 0x09), *range(0x0B, 0x20), *range(0x7F, 0xA0)]]


def test_terminal_controls_in_articles_and_file_names_are_never_printed(articles: Path, tmp_path: Path) -> None:
    (articles / "alert.txt").write_text(
        "\x1b[31mRed alert\x1b[0m in the harbour\n\nThe harbour \x9b2J master raised a red\x08\x08\x08 alert\r "
        "on Monday after the \x1b]0;owned\x07storm.\n"
    )
    (articles / "\x1b[2Jbroken\x1b[0m.json").write_text("{not json")
    folders = ["--articles", str(articles), "--index", str(tmp_path / "index")]
    answered = qa("ask", "red alert in the harbour\x1b[8m", "-k", "1", *folders)  # builds the missing index
    built = qa("index", *folders)
    asked = qa("ask", "red alert in the harbour\x1b[8m", "-k", "1", "--passages", *folders)
    as_json = qa("ask", "red alert in the harbour", "-k", "1", "--json", "--passages", *folders)
    for run in (built, answered, asked, as_json):
        assert run.returncode == 0, run.stderr
        assert not [char for char in run.stdout + run.stderr if char in CONTROLS]
    assert "skipped: broken.json: malformed JSON" in built.stderr
    assert "0 added, 0 updated, 0 removed, 7 unchanged" in built.stdout  # the first ask built the index
    assert "[1] Red alert in the harbour  (score" in answered.stdout and "master raised" in answered.stdout
    assert asked.stdout.startswith("[1] Red alert in the harbour  (score")
    assert "The harbour 2J master raised a red alert on Monday after the ]0;ownedstorm." in asked.stdout
    hit = json.loads(as_json.stdout)["hits"][0]  # JSON keeps the exact text, escaped
    assert hit["title"] == "\x1b[31mRed alert\x1b[0m in the harbour" and "\x9b2J" in hit["text"]


def test_related_prints_the_closest_articles_and_refuses_an_unknown_id(faiss_library: Library) -> None:
    faiss_library.sync()  # in this process, with the shared model: the commands below embed nothing
    settings = faiss_library.settings
    folders = ["--articles", str(settings.articles_dir), "--index", str(settings.index_dir)]
    as_json = qa("related", "ecb-rates.md", "-k", "2", "--json", *folders)
    assert as_json.returncode == 0, as_json.stderr
    found = json.loads(as_json.stdout)
    assert found["article_id"] == "ecb-rates.md" and len(found["related"]) == 2
    first = found["related"][0]
    printed = qa("related", "ecb-rates.md", "-k", "1", *folders)
    title_line, where_line = printed.stdout.splitlines()
    assert title_line.startswith(f"[1] {first['title']}  (similarity 0.")
    assert where_line == "    " + "  ".join(part for part in (first["article_id"], first["date"], first["url"]) if part)
    unknown = qa("related", "no-such.md", *folders)
    assert unknown.returncode == 2 and "Traceback" not in unknown.stderr
    assert "error: No indexed article has the id 'no-such.md'" in unknown.stderr
