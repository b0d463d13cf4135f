"""BM25 in segments: an index grown and pruned sync by sync scores exactly like one refitted from scratch."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import bm25s
import numpy as np
import pytest

from qa import Library, Settings
from qa.embed import Embedder
from qa.health import RECHECK, SAMPLE
from qa.lexical import LexicalIndex, terms
from qa.schema import best_first
from qa.store import Store
from tests.conftest import BBC_NEWS

QUERIES = [
    "Which carmaker's profits fell in America?", "oil price rise oil", "election Labour Blair tax",
    "mobile phone music downloads", "Who won the Australian Open?", "film festival award actress",
]


@pytest.fixture(scope="module")
def passages() -> list[list[str]]:
    """The terms of about 1,300 real news paragraphs (BBC, with BBC_NEWS_DIR), or of generated ones without it."""
    if BBC_NEWS is not None:
        files = sorted((BBC_NEWS / "raw").glob("*/*.txt"))[:300]
        bodies = [path.read_text(encoding="utf-8", errors="replace").partition("\n")[2] for path in files]
        texts = [part.strip() for body in bodies for part in body.split("\n\n") if part.strip()]
    else:
        rng = random.Random(1)
        words = " ".join(QUERIES).split() + "market court river storm bank match league wages".split()
        texts = [" ".join(rng.choice(words) for _ in range(rng.randint(5, 60))) for _ in range(1300)]
    return terms(texts)


def refit(rows: list[int], passage_terms: list[list[str]]) -> dict[int, np.ndarray]:
    """row -> bm25s score of each query, from a bm25s index fitted on these passages alone."""
    reference = bm25s.BM25()
    reference.index(passage_terms, show_progress=False)
    scores = {}
    for at, query in enumerate(QUERIES):
        ids = [reference.vocab_dict[t] for t in terms([query])[0] if t in reference.vocab_dict]
        scores[at] = reference.get_scores_from_ids(ids)
    return {row: np.array([scores[q][position] for q in range(len(QUERIES))]) for position, row in enumerate(rows)}


def test_an_index_grown_and_pruned_in_many_syncs_scores_like_a_refit(passages: list[list[str]]) -> None:
    rng = random.Random(7)
    live: dict[int, list[str]] = {}
    lexical = LexicalIndex()
    next_row = 1
    for sync in range(40):  # syncs of 1 to 120 new passages, some deleting earlier ones
        removed = rng.sample(sorted(live), min(len(live), rng.choice([0, 0, 1, 5, 40])))
        for row in removed:
            del live[row]
        next_row = max(live, default=0) + 1  # rows are reused after the newest ones are deleted, as in SQLite
        count = rng.randint(1, 120)
        rows = list(range(next_row, next_row + count))
        new = [passages[rng.randrange(len(passages))] for _ in rows]
        live.update(zip(rows, new, strict=True))
        lexical = lexical.updated(removed, rows, new).saved_as(f"lexical-{sync}")
    assert 1 < len(lexical.parts) <= 8, "small segments are merged as they accumulate"
    assert lexical.rows.tolist() == sorted(live)

    rows = sorted(live)
    expected = refit(rows, [live[row] for row in rows])
    for at, query in enumerate(QUERIES):
        found = lexical.search(query, 20)
        assert found, query
        want = sorted(((row, float(values[at])) for row, values in expected.items() if values[at] > 0),
                      key=lambda item: -item[1])[:20]
        assert [score for _, score in found] == pytest.approx([score for _, score in want], rel=1e-5)
        scored = {row: score for row, score in found}
        assert all(scored[row] == pytest.approx(float(expected[row][at]), rel=1e-5) for row in scored)


def test_a_filtered_search_ranks_only_the_allowed_rows(passages: list[list[str]]) -> None:
    rows = list(range(1, 401))
    lexical = LexicalIndex.build(rows[:300], passages[:300]).saved_as("lexical-1")
    lexical = lexical.updated([5, 6, 7], rows[300:], passages[300:400])
    allowed = set(range(1, 401, 3)) - {7}
    found = lexical.search(QUERIES[1], 100, allowed)
    everything = lexical.search(QUERIES[1], 400)
    assert found and {row for row, _ in found} <= allowed
    assert found == best_first([(row, score) for row, score in everything if row in allowed], 100)
    assert not {5, 6, 7} & {row for row, _ in everything}, "deleted passages are not found"


def test_equal_scores_are_ranked_by_row_and_the_cut_keeps_the_lowest_rows() -> None:
    texts = ["harbour storm repairs", "harbour ferry timetable", "storm warning harbour closed"] * 100
    lexical = LexicalIndex.build(list(range(1, 301)), terms(texts))
    for k in (1, 5, 17, 60):
        found = lexical.search("harbour storm repairs", k)
        assert found == best_first(lexical.search("harbour storm repairs", 300), k)
        tied = [row for row, score in found if score == found[0][1]]
        assert tied == list(range(1, 3 * len(tied), 3)), "the lowest rows of those tied, in order"


def test_saved_segments_are_referenced_not_written_again(passages: list[list[str]], tmp_path: Path) -> None:
    first = LexicalIndex.build(list(range(1, 1001)), passages[:1000])
    first.save(tmp_path / "lexical-1")
    first = first.saved_as("lexical-1")
    second = first.updated([3], [1001, 1002], passages[1000:1002])
    second.save(tmp_path / "lexical-2")
    written = sorted(path.name for path in (tmp_path / "lexical-2").iterdir())
    assert written == sorted(["segments.json", "rows.npy", "lengths.npy", "terms.json", "indptr.npy", "docs.npy",
                              "counts.npy"])
    assert (tmp_path / "lexical-2" / "rows.npy").stat().st_size < 200, "only the two new passages"
    loaded = LexicalIndex.load(tmp_path / "lexical-2")
    assert loaded.rows.tolist() == [row for row in range(1, 1003) if row != 3]
    for query in QUERIES:
        assert loaded.search(query, 10) == second.search(query, 10)


def article(title: str, text: str) -> str:
    return f"{title}\n\n{text}\n"


def test_adding_an_article_writes_one_small_segment_and_deleting_it_writes_none(
    articles: Path, tmp_path: Path, embedder: Embedder
) -> None:
    library = Library(Settings(articles, tmp_path / "index"), embedder=embedder)
    library.sync()
    store = library.store
    first = store.manifest()["lexical"]
    (articles / "beekeeper.txt").write_text(article(
        "Beekeeper retires after forty years",
        "The beekeeper of the Kilbride abbey, Aoife Brennan, retired on Friday after forty years. "
        "She tended 132 hives, she said, and never lost a colony to winter.",
    ))
    report = library.sync()
    assert report.added == 1
    added = store.manifest()["lexical"]
    listing = json.loads((tmp_path / "index" / added / "segments.json").read_text())
    assert [entry["folder"] for entry in listing["segments"]] == [first, added], "the old segment is kept as it is"
    assert len(np.load(tmp_path / "index" / added / "rows.npy")) == report.passages_added
    hit = library.retrieve("How many hives did the beekeeper tend?", k=1, mode="bm25")[0]
    assert hit.citation.article_id == "beekeeper.txt"

    (articles / "beekeeper.txt").unlink()
    library.sync()
    deleted = store.manifest()["lexical"]
    assert sorted(path.name for path in (tmp_path / "index" / deleted).iterdir()) == ["segments.json"]
    hits = library.retrieve("How many hives did the beekeeper tend?", k=5, mode="bm25")
    assert all(hit.citation.article_id != "beekeeper.txt" for hit in hits)
    assert store.check() == []
    assert sorted(path.name for path in (tmp_path / "index").glob("lexical-*")) == [first, deleted]
    cached = store.db.execute("SELECT COUNT(*) FROM vectors").fetchone()[0]
    assert cached == store.db.execute("SELECT COUNT(DISTINCT vector_key) FROM passages").fetchone()[0], (
        "the deleted article's cached vectors went with it")

    fresh = Store(tmp_path / "index")  # another process reads the segments from disk
    question = "What did the central bank decide about rates?"
    assert fresh.search_terms(question, 5) == store.search_terms(question, 5)
    fresh.close()


def test_a_damaged_older_segment_is_noticed_and_rebuilt_from_the_terms(
    articles: Path, tmp_path: Path, embedder: Embedder
) -> None:
    library = Library(Settings(articles, tmp_path / "index"), embedder=embedder)
    library.sync()
    first = store_folder = library.store.manifest()["lexical"]
    (articles / "extra.txt").write_text(article("Ferry strike ends", "The ferry strike ended on Monday after talks."))
    library.sync()
    library.store.close()
    assert library.store.manifest()["lexical"] != store_folder
    (tmp_path / "index" / first / "counts.npy").write_bytes(b"garbage")
    problems = Store(tmp_path / "index").check()
    assert any(f"{first}/counts.npy does not match its checksum" in problem for problem in problems), problems
    again = Library(Settings(articles, tmp_path / "index"), embedder=embedder)
    assert again.retrieve("When did the ferry strike end?", k=1, mode="bm25")[0].citation.article_id == "extra.txt"
    assert again.store.check() == []


def test_a_small_sync_checks_the_new_article_and_a_few_more_not_the_whole_sample(
    articles: Path, tmp_path: Path, embedder: Embedder
) -> None:
    for number in range(30):
        (articles / f"note-{number:02d}.txt").write_text(article(
            f"Council note {number} on harbour {number * 7} repairs",
            f"Harbour {number * 7} needs repairs costing {number * 1000} euro, the council said in note {number}.",
        ))
    library = Library(Settings(articles, tmp_path / "index"), embedder=embedder)
    library.sync()
    full = library.status().health
    assert full is not None and full.articles == len(library.articles())
    shutil.copy(articles / "note-01.txt", articles / "note-copy.txt")  # a copy: found as also_in of note-01
    (articles / "new.txt").write_text(article("Swans return to the Dunmore estuary",
                                              "Hundreds of whooper swans returned to the estuary this week."))
    searched = embedder.queries_embedded
    library.sync()
    health = library.status().health
    assert health is not None
    assert embedder.queries_embedded - searched == RECHECK + 2, "the sample's oldest 10 and the two new articles"
    assert health.articles == min(SAMPLE, full.articles + 2)
    assert sorted(health.checked[-2:]) == [("new.txt", 1), ("note-copy.txt", 1)], "they found themselves first"
    (articles / "new.txt").unlink()
    searched = embedder.queries_embedded
    library.sync()
    assert embedder.queries_embedded == searched, "a sync that only deletes searches nothing"
    assert "new.txt" not in {article_id for article_id, _ in library.status().health.checked}  # type: ignore[union-attr]


def test_term_counts_take_two_bytes_a_posting_unless_one_passes_65535(tmp_path: Path) -> None:
    small = LexicalIndex.build([1, 2], [["harbour", "harbour", "storm"], ["storm"]])
    assert small.parts[0].segment.counts.dtype == np.uint16
    huge = LexicalIndex.build([1, 2], [["harbour"] * 70_000 + ["storm"], ["storm"]])
    assert huge.parts[0].segment.counts.dtype == np.float32 and 70_000 in huge.parts[0].segment.counts
    small.save(tmp_path / "lexical-1")
    again = LexicalIndex.load(tmp_path / "lexical-1")
    assert again.parts[0].segment.counts.dtype == np.uint16
    assert again.search("harbour storm", 2) == small.search("harbour storm", 2)
    assert huge.search("harbour storm", 2)[0][0] == 1
