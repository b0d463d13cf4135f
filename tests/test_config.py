"""Settings: every QA_* variable, its default and its error for a bad value; one place reads them; settings that
would lose data are refused, however they are given (in Python, the environment or flags)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import app as app_module
from qa import Settings
from qa.config import VARIABLES, EmbeddingSettings, StoreLocation, parse_store, settings_table
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


# Each variable, a value it accepts, and where that value lands.
ACCEPTED = [
    ("QA_ARTICLES_DIR", "/srv/news", "articles_dir", Path("/srv/news")),
    ("QA_INDEX_DIR", "/srv/news-index", "index_dir", Path("/srv/news-index")),
    ("QA_MODEL", "/models/mpnet", "model", "/models/mpnet"),
    ("QA_PASSAGE_WORDS", "200", "passage_words", 200),
    ("QA_OVERLAP_SENTENCES", "1", "overlap_sentences", 1),
    ("QA_BATCH_SIZE", " 16 ", "batch_size", 16),
    ("QA_MODE", "bm25", "mode", "bm25"),
    ("QA_SOURCES", "3", "sources", 3),
    ("QA_WATCH_SECONDS", "0", "watch_seconds", 0),
    ("QA_STORE", "milvus://db.example:19530", "store", "milvus://db.example:19530"),
    ("QA_FAISS_INDEX", "IVF256,Flat nprobe=16", "faiss_index", "IVF256,Flat nprobe=16"),
    ("QA_MILVUS_COLLECTION", "news_2024", "milvus.collection", "news_2024"),
    ("QA_MILVUS_TOKEN", "reader:secret", "milvus.token", "reader:secret"),
    ("QA_EMBED_PRECISION", "BF16", "embedding.precision", "bf16"),
    ("QA_PASSAGE_ENCODER", "onnx", "embedding.passage_encoder", "onnx"),
    ("QA_QUERY_ENCODER", "onnx-int8", "embedding.query_encoder", "onnx-int8"),
    ("QA_CACHE_DIR", "/var/cache/qa", "embedding.cache_dir", Path("/var/cache/qa")),
    ("QA_HOST", "0.0.0.0", "server.host", "0.0.0.0"),
    ("QA_PORT", "8080", "server.port", 8080),
    ("QA_AUTH", "editor:pa:ss", "server.auth", ("editor", "pa:ss")),
]
DEFAULTS = {
    "articles_dir": ROOT / "seeds", "index_dir": ROOT / "index", "model": "all-MiniLM-L6-v2", "passage_words": 120,
    "overlap_sentences": 0, "batch_size": 32, "mode": "hybrid", "sources": 5, "watch_seconds": 3, "store": "faiss",
    "faiss_index": "auto", "milvus.collection": "qa", "milvus.token": "", "embedding.precision": "auto",
    "embedding.passage_encoder": "auto", "embedding.query_encoder": "auto",
    "embedding.cache_dir": Path.home() / ".cache" / "qa-news", "server.host": "127.0.0.1", "server.port": 7860,
    "server.auth": None,
}
# Each variable, a value it refuses, and what the error says.
REFUSED_VALUES = [
    ("QA_PASSAGE_WORDS", "many", "QA_PASSAGE_WORDS='many' is not a whole number; set it to e.g. 120."),
    ("QA_PASSAGE_WORDS", "5", "passage_words=5 (QA_PASSAGE_WORDS) is too small; use at least 10."),
    ("QA_OVERLAP_SENTENCES", "9", "overlap_sentences=9 (QA_OVERLAP_SENTENCES) must be between 0 and 5."),
    ("QA_BATCH_SIZE", "0", "batch_size=0 (QA_BATCH_SIZE) must be at least 1."),
    ("QA_BATCH_SIZE", "3.5", "QA_BATCH_SIZE='3.5' is not a whole number; set it to e.g. 32."),
    ("QA_MODE", "semantic", "mode='semantic' (QA_MODE) is not a search mode; use dense, bm25 or hybrid."),
    ("QA_SOURCES", "11", "sources=11 (QA_SOURCES) must be between 1 and 10."),
    ("QA_WATCH_SECONDS", "-1", "watch_seconds=-1 (QA_WATCH_SECONDS) cannot be negative; 0 turns the watch off."),
    ("QA_STORE", "postgres://db", "store='postgres://db' (QA_STORE) is not an index store; use faiss, "
     "milvus-lite:index/milvus.db or milvus://host:19530."),
    ("QA_STORE", "milvus-lite:", "store='milvus-lite:' (QA_STORE) is not an index store"),
    ("QA_MILVUS_COLLECTION", "2024-news", "milvus collection='2024-news' (QA_MILVUS_COLLECTION) must start with a "
     "letter and hold only letters, digits and underscores, e.g. qa or news_2024."),
    ("QA_EMBED_PRECISION", "fp16", "precision='fp16' (QA_EMBED_PRECISION) is not a choice; use one of auto, fp32, "
     "bf16."),
    ("QA_PASSAGE_ENCODER", "tensorrt", "passage_encoder='tensorrt' (QA_PASSAGE_ENCODER) is not a choice; use one of "
     "auto, torch, onnx."),
    ("QA_QUERY_ENCODER", "gpu", "query_encoder='gpu' (QA_QUERY_ENCODER) is not a choice; use one of auto, torch, "
     "onnx, onnx-int8."),
    ("QA_PORT", "http", "QA_PORT='http' is not a whole number; set it to e.g. 7860."),
    ("QA_PORT", "70000", "port=70000 (QA_PORT) must be between 1 and 65535."),
    ("QA_AUTH", "editor", "QA_AUTH must be user:password (both non-empty)."),
    ("QA_AUTH", ":secret", "QA_AUTH must be user:password (both non-empty)."),
]


def setting(settings: Settings, path: str) -> object:
    """The value at "group.name" (or "name") of `settings`."""
    value: object = settings
    for part in path.split("."):
        value = getattr(value, part)
    return value


def test_every_variable_is_specified_here() -> None:
    names = [variable.name for variable in VARIABLES]
    assert [name for name, *_ in ACCEPTED] == names
    assert sorted(DEFAULTS) == sorted(variable.setting for variable in VARIABLES)
    assert {name for name, *_ in REFUSED_VALUES} <= set(names)


@pytest.mark.parametrize(("variable", "raw", "path", "expected"), ACCEPTED, ids=[row[0] for row in ACCEPTED])
def test_each_variable_sets_its_setting(variable: str, raw: str, path: str, expected: object) -> None:
    assert setting(Settings.from_env({variable: raw}), path) == expected


def test_unset_and_blank_variables_keep_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    for settings in (Settings.from_env({}), Settings.from_env({name: "  " for name, *_ in ACCEPTED}), Settings()):
        assert {path: setting(settings, path) for path in DEFAULTS} == DEFAULTS


def test_the_onnx_cache_follows_xdg_cache_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert Settings.from_env({}).embedding.cache_dir == tmp_path / "qa-news"


@pytest.mark.parametrize(("variable", "raw", "message"), REFUSED_VALUES, ids=[f"{r[0]}={r[1]}" for r in REFUSED_VALUES])
def test_a_bad_value_is_a_clear_error(variable: str, raw: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({variable: raw})
    assert str(raised.value).startswith(message)


def test_flags_win_over_the_environment() -> None:
    settings = Settings.from_env({"QA_MODE": "bm25", "QA_SOURCES": "11"}, mode="dense", sources=3)
    assert (settings.mode, settings.sources) == ("dense", 3)


def test_the_store_string_is_parsed_in_one_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert parse_store("faiss") == StoreLocation("faiss")
    assert parse_store("milvus-lite:m.db") == StoreLocation("milvus-lite", str(tmp_path / "m.db"))
    assert parse_store("milvus://db:19530") == StoreLocation("milvus", "http://db:19530")
    assert parse_store("milvus+https://db:443") == StoreLocation("milvus", "https://db:443")
    assert Settings(store="milvus://db:19530").location.kind == "milvus"


def test_secrets_stay_out_of_the_settings_repr() -> None:
    settings = Settings.from_env({"QA_AUTH": "editor:hunter2", "QA_MILVUS_TOKEN": "tok-123"})
    assert "hunter2" not in repr(settings) and "tok-123" not in repr(settings)


def test_embedding_settings_are_checked_when_made_in_python() -> None:
    with pytest.raises(ConfigError, match=r"precision='fp16' \(QA_EMBED_PRECISION\) is not a choice"):
        EmbeddingSettings(precision="fp16")


def test_the_commands_report_a_bad_variable_in_one_line() -> None:
    checked = run("-m", "qa", "check", env={"QA_SOURCES": "eleven"})
    assert checked.returncode == 1 and "Traceback" not in checked.stderr
    assert checked.stderr.strip() == "error: QA_SOURCES='eleven' is not a whole number; set it to e.g. 5."


def test_the_chat_server_reports_a_bad_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("QA_PORT", "0")
    assert app_module.main([]) == 1
    assert capsys.readouterr().err.strip() == "error: port=0 (QA_PORT) must be between 1 and 65535."


def test_only_the_settings_module_reads_qa_variables() -> None:
    reads = re.compile(r"(environ|getenv)\W[^\n]*[\"']QA_")
    sources = [*sorted((ROOT / "qa").rglob("*.py")), ROOT / "app.py"]
    readers = [path.name for path in sources if reads.search(path.read_text()) and path.name != "config.py"]
    assert readers == []


def test_every_qa_name_in_the_code_and_readme_is_a_setting() -> None:
    texts = [path.read_text() for path in [*(ROOT / "qa").rglob("*.py"), ROOT / "app.py", ROOT / "README.md"]]
    mentioned = set(re.findall(r"\bQA_[A-Z_]+[A-Z]\b", "\n".join(texts)))
    assert mentioned - {variable.name for variable in VARIABLES} == set()


def test_the_readme_table_is_the_settings_table() -> None:
    assert settings_table() in (ROOT / "README.md").read_text()
