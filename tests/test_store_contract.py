"""The contract of an index store: every verb of `IndexStore` behaves the same on FAISS and on Milvus.

Each test runs on both stores (the `library` and `seed_library` fixtures are parametrized over them,
see conftest.py). What only one store does is specified beside it: FAISS files, layouts and repair in
test_ann.py, test_build.py, test_reliability.py and test_crash.py; Milvus's interrupted syncs in test_milvus.py.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from pathlib import Path

import numpy as np
import pytest
from conftest import BACKENDS, backend_settings

from qa import Library
from qa.backends import copy_index
from qa.embed import Embedder
from qa.errors import ConfigError
from qa.schema import Filters
from qa.store import FORMAT_VERSION, Exportable, IndexStore, Maintainable, restrict
from qa.store.contract import mean_directions

QUESTION = "What did the ECB do with interest rates?"
NO_SUCH_ROW = 10**9


def cited(store: IndexStore, rows: list[int]) -> set[str]:
    """The ids of the articles whose passages `rows` are."""
    bodies = {passage.body_hash for passage in store.passages(rows).values()}
    return {citation.article_id for found in store.citations(bodies).values() for citation in found}


def test_both_stores_declare_the_contract_and_only_faiss_offers_maintenance(seed_library: Library) -> None:
    store = seed_library.store
    assert IndexStore in type(store).__mro__, "declared, not only matching by shape"
    on_faiss = seed_library.settings.store == "faiss"
    assert isinstance(store, Maintainable) is on_faiss
    assert isinstance(store, Exportable) is on_faiss


def test_an_unbuilt_store_says_there_is_no_index(library: Library) -> None:
    store = library.store
    assert not store.exists()
    [problem] = store.check()
    assert problem.startswith("there is no index in")
    assert store.manifest() == {}
    assert store.article_hashes() == {} and store.body_hashes() == set() and store.passage_count([]) == 0


def test_a_built_store_describes_what_it_holds(seed_library: Library) -> None:
    store = seed_library.store
    manifest = store.manifest()
    assert store.exists() and store.check() == []
    assert manifest["format"] == FORMAT_VERSION and manifest["dimension"] == seed_library.embedder.dimension
    listed = store.article_list()
    assert [article_id for article_id, _, _ in listed] == sorted(article_id for article_id, _, _ in listed)
    counts = store.counts()
    assert counts["articles"] == len(listed) == len(store.article_hashes())
    assert counts["bodies"] == len(store.body_hashes())
    assert store.passage_count(store.body_hashes()) == counts["passages"] > counts["articles"]
    first_id, first_title, _ = listed[0]
    assert store.titles([first_id, "no-such-article"]) == {first_id: first_title}
    assert store.newest_date() == max(date.fromisoformat(day) for _, _, day in listed if day)


def test_dense_search_ranks_best_first_by_the_inner_product_with_the_stored_vectors(seed_library: Library) -> None:
    store = seed_library.store
    query = seed_library.embedder.encode_query(QUESTION)
    found = store.search(query, 5)
    scores = [score for _, score in found]
    assert len(found) == 5 and scores == sorted(scores, reverse=True)
    rows = [row for row, _ in found]
    vectors = store.vectors([*rows, NO_SUCH_ROW])
    assert set(vectors) == set(rows), "a row that does not exist is left out"
    assert [float(vectors[row] @ query[0]) for row in rows] == pytest.approx(scores, abs=1e-5)
    assert set(store.passages([*rows, NO_SUCH_ROW])) == set(rows)
    assert "ecb-rates.md" in cited(store, rows[:1])


def test_term_search_ranks_best_first_by_bm25(seed_library: Library) -> None:
    store = seed_library.store
    found = store.search_terms("Northern Lighthouse Board", 3)
    scores = [score for _, score in found]
    assert found and scores == sorted(scores, reverse=True) and scores[-1] > 0
    assert cited(store, [found[0][0]]) == {"lighthouse.html"}


def test_dates_are_those_of_the_passages_articles(seed_library: Library) -> None:
    store = seed_library.store
    rows = [row for row, _ in store.search(seed_library.embedder.encode_query(QUESTION), 20)]
    dated = {article_id: day for article_id, _, day in store.article_list()}
    dates = store.dates(rows)
    for row in rows:
        days = {dated[article_id] for article_id in cited(store, [row])} - {None}
        assert dates.get(row) == (date.fromisoformat(max(days)) if days else None)


def test_an_article_vector_is_the_normalized_mean_of_its_passage_vectors(seed_library: Library) -> None:
    store = seed_library.store
    article_ids, vectors = store.article_vectors()
    assert article_ids == [article_id for article_id, _, _ in store.article_list()]
    assert vectors.shape == (len(article_ids), seed_library.embedder.dimension) and vectors.dtype == np.float32
    query = seed_library.embedder.encode_query("news")
    for article_id, vector in zip(article_ids, vectors, strict=True):
        rows = [row for row, _ in store.search(query, 100, restrict(Filters(articles=(article_id,))))]
        mean = np.mean(list(store.vectors(rows).values()), axis=0)
        assert np.allclose(vector, mean / np.linalg.norm(mean), atol=1e-5), article_id


def test_mean_directions_group_rows_by_label_however_they_are_batched() -> None:
    vectors = np.asarray([[3, 0], [0, 1], [1, 3], [0, 2], [5, 5]], dtype=np.float32)
    labels = ["b", "a", "b", "a", "c"]
    whole = mean_directions([(labels, vectors)])
    split = mean_directions([(labels[:3], vectors[:3]), ([], vectors[:0]), (labels[3:], vectors[3:])])
    assert whole[0] == split[0] == ["a", "b", "c"]
    assert np.allclose(whole[1], [[0, 1], [0.8, 0.6], [2**-0.5, 2**-0.5]]) and np.allclose(split[1], whole[1])
    assert mean_directions([])[0] == []


def test_filters_that_restrict_nothing_make_no_restriction() -> None:
    assert restrict(None) is None and restrict(Filters()) is None and restrict(None, (None, None)) is None


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (Filters(sources=("example wire",)), {"ecb-rates.md", "briefs.jsonl#rail-strike"}),
        (Filters(sources=("briefs.jsonl",)), {"briefs.jsonl#rail-strike", "briefs.jsonl#chess-prodigy"}),
        (Filters(articles=("chess",)), {"briefs.jsonl#chess-prodigy"}),
        (Filters(articles=("lighthouse.html",)), {"lighthouse.html"}),
        (Filters(date_from="2025-01-01"), {"ecb-rates.md", "briefs.jsonl#rail-strike", "briefs.jsonl#chess-prodigy"}),
        (Filters(date_from="2024-05-01", date_to="2024-12-31"), {"lighthouse.html", "glacier-study.json"}),
        (Filters(sources=("nobody",)), set()),
        *[(Filters(sources=(odd,), articles=(odd,)), set()) for odd in ('ex"ample', "50%_off\\", "'; drop")],
    ],
    ids=["publisher", "source file", "title word", "article id", "from a date", "date range", "no match",
         "quote", "wildcards", "sql"],
)
def test_a_restriction_keeps_the_passages_of_matching_articles_only(
    seed_library: Library, filters: Filters, expected: set[str]
) -> None:
    store = seed_library.store
    restriction = restrict(filters)
    query = seed_library.embedder.encode_query("news")
    assert cited(store, [row for row, _ in store.search(query, 100, restriction)]) == expected
    assert cited(store, [row for row, _ in store.search_terms("rail strike chess", 100, restriction)]) <= expected


SHARED = (
    "The harbour authority said the storm wall would be raised by two metres before next winter, and that "
    "the work would close the northern quay to fishing boats for eleven weeks while cranes were brought in. "
    "Harbour staff will move the boats to the southern basin, where extra moorings have been laid."
)


@pytest.mark.parametrize("backend", BACKENDS)
def test_passages_with_equal_scores_come_in_row_order(backend: str, tmp_path: Path, embedder: Embedder) -> None:
    articles = tmp_path / "articles"
    articles.mkdir()
    lead = "Port news from the {n} town on the coast, where the council met on Monday to discuss the budget."
    for n, town in enumerate(["first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth"]):
        (articles / f"port-{n}.txt").write_text(f"Harbour works\n\n{lead.format(n=town)}\n\n{SHARED}\n")
    settings = replace(backend_settings(backend, articles, tmp_path / "index"), passage_words=40)
    library = Library(settings, embedder=embedder)
    try:
        library.sync()
        question = embedder.encode_query(SHARED)
        for k in (1, 3, 8):
            dense = library.store.search(question, k)
            tied = [row for row, score in dense if score == pytest.approx(dense[0][1], abs=1e-6)]
            assert len(tied) == k and tied == sorted(tied), "equal scores in row order"
            lexical = library.store.search_terms(SHARED, k)
            assert [row for row, _ in lexical] == sorted(row for row, _ in lexical)
        assert library.store.search(question, 3) == library.store.search(question, 8)[:3], "the cut keeps the lowest"
    finally:
        library.store.close()


def test_the_vector_cache_gives_back_what_was_cached(library: Library) -> None:
    store = library.store
    vectors = library.embedder.encode(["the first text", "the second text"])
    with store.writing():
        store.cache_vectors(["first", "second"], vectors)
    found = store.cached_vectors(["second", "first", "never cached"])
    assert set(found) == {"first", "second"}
    assert np.allclose(found["first"], vectors[0]) and np.allclose(found["second"], vectors[1])


def test_a_copied_body_is_one_body_of_two_articles_and_notes_join_the_manifest(
    library: Library, articles: Path
) -> None:
    library.sync()
    store = library.store
    before = store.counts()
    (articles / "copy-of-ecb.md").write_text((articles / "ecb-rates.md").read_text())
    library.sync()
    after = store.counts()
    assert after == {**before, "articles": before["articles"] + 1, "passages": after["passages"]}
    hashes = store.article_hashes()
    assert hashes["copy-of-ecb.md"][1] == hashes["ecb-rates.md"][1]
    article_ids, vectors = store.article_vectors()
    assert np.array_equal(vectors[article_ids.index("copy-of-ecb.md")], vectors[article_ids.index("ecb-rates.md")])
    body = hashes["ecb-rates.md"][1]
    assert [c.article_id for c in store.citations([body])[body]] == ["copy-of-ecb.md", "ecb-rates.md"]
    with store.writing():
        store.note("reviewed", {"by": "contract"})
    assert store.manifest()["reviewed"] == {"by": "contract"} and store.check() == []


def test_only_an_exportable_store_can_be_copied(library: Library) -> None:
    message = "no index" if isinstance(library.store, Exportable) else "Only a FAISS index"
    with pytest.raises(ConfigError, match=message):
        copy_index(library.store, library.store)
