"""Settings that would lose data are refused, however they are given: in Python, the environment or flags."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import app as app_module
from qa import Settings
from qa.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
REFUSED = "Choose an index folder outside the articles folder"


def layouts(tmp_path: Path) -> dict[str, tuple[Path, Path]]:
    """(articles, index) pairs that share a folder: the same, inside, containing, and the same through a symlink."""
    news = tmp_path / "news"
    news.mkdir()
    (tmp_path / "alias").symlink_to(news)
    return {
        "the same folder": (news, news),
        "index inside the articles": (news, news / "index"),
        "articles inside the index": (news / "articles", tmp_path),
        "the same folder through a symlink": (news, tmp_path / "alias"),
        "inside it through a symlink": (tmp_path / "alias", news / "sub" / ".." / "index"),
    }


LAYOUTS = [
    "the same folder", "index inside the articles", "articles inside the index", "the same folder through a symlink",
    "inside it through a symlink",
]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_settings_refuse_an_index_folder_that_shares_the_articles_folder(tmp_path: Path, layout: str) -> None:
    articles, index = layouts(tmp_path)[layout]
    with pytest.raises(ConfigError, match=REFUSED):
        Settings(articles_dir=articles, index_dir=index)


def test_side_by_side_folders_are_accepted_even_with_a_shared_name_prefix(tmp_path: Path) -> None:
    Settings(articles_dir=tmp_path / "news", index_dir=tmp_path / "news-index")


@pytest.mark.parametrize("layout", LAYOUTS)
def test_the_environment_is_refused_the_same_way(
    tmp_path: Path, layout: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    articles, index = layouts(tmp_path)[layout]
    monkeypatch.setenv("QA_ARTICLES_DIR", str(articles))
    monkeypatch.setenv("QA_INDEX_DIR", str(index))
    with pytest.raises(ConfigError, match=REFUSED):
        Settings.from_env()


def test_a_flag_can_correct_a_clashing_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QA_ARTICLES_DIR", str(tmp_path / "news"))
    monkeypatch.setenv("QA_INDEX_DIR", str(tmp_path / "news"))
    assert Settings.from_env(index_dir=tmp_path / "index").index_dir == tmp_path / "index"


def run(*command: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("QA_")}
    return subprocess.run(
        [sys.executable, *command], cwd=ROOT, env={**clean, "PYTHONPATH": str(ROOT), **(env or {})},
        capture_output=True, text=True, timeout=120,
    )


def test_qa_index_with_clashing_flags_exits_1_and_writes_nothing(tmp_path: Path) -> None:
    news = tmp_path / "news"
    news.mkdir()
    (news / "lexical-notes.txt").write_text("Notes on the lexicon\n\nA word list.\n")
    built = run("-m", "qa", "index", "--articles", str(news), "--index", str(news))
    assert built.returncode == 1 and REFUSED in built.stderr and "Traceback" not in built.stderr
    assert sorted(path.name for path in news.iterdir()) == ["lexical-notes.txt"]


def test_qa_index_with_a_clashing_environment_exits_1(tmp_path: Path) -> None:
    news = tmp_path / "news"
    news.mkdir()
    built = run("-m", "qa", "index", env={"QA_ARTICLES_DIR": str(news), "QA_INDEX_DIR": str(news / "index")})
    assert built.returncode == 1 and REFUSED in built.stderr and "Traceback" not in built.stderr
    assert not (news / "index").exists()


def test_the_chat_server_refuses_clashing_folders_before_serving(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    news = tmp_path / "news"
    news.mkdir()
    assert app_module.main(["--articles", str(news), "--index", str(news / "index"), "--port", "7999"]) == 1
    assert REFUSED in capsys.readouterr().err
    assert not (news / "index").exists()
