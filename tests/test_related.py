"""Related coverage: the articles closest to an article, near-copies told once, cited ones left out, errors in words."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from qa import Library, Settings
from qa.embed import Embedder
from qa.errors import QuestionError, UnknownArticleError
from qa.related import MAX_RELATED, NEAR_COPY, SAME_STORY, ArticleMap, more_on_sources
from qa.reply import more_on_this_story, to_markdown
from qa.schema import Citation, Related

MARCH = (
    "The European Central Bank kept its main deposit rate at 2.5% on Thursday, saying inflation in the euro area "
    "had eased to 2.2% in February. ECB President Christine Lagarde told reporters in Frankfurt that the bank was not "
    "committing to a particular path for rates. Economists had expected the pause after five cuts since last June."
)
APRIL = (
    "The European Central Bank cut its deposit rate by a quarter point to 2.25% on Thursday, its sixth cut in a year, "
    "as inflation in the euro area slowed towards its 2% target. ECB President Christine Lagarde said US tariffs "
    "clouded the outlook for growth, and markets expect another cut in June."
)
APRIL_REWORDED = (
    "The European Central Bank cut its deposit rate by a quarter of a point to 2.25% on Thursday, its sixth cut in a "
    "year, as euro area inflation slowed towards its 2% target. ECB President Christine Lagarde said US tariffs "
    "clouded the growth outlook, and markets expect another cut in June."
)
MARCH_LIVE = (
    "Live: reporters in Frankfurt waited for Christine Lagarde's press conference, where she took questions on the "
    "strength of the euro, bank lending and the effect of energy prices on households across the euro area."
)
JUNE = (
    "The European Central Bank lowered its deposit rate to 2% on Thursday, its eighth cut since last summer, and "
    "said inflation in the euro area should stay close to its target this year. Christine Lagarde said the bank was "
    "in a good place to face uncertainty over trade."
)
CHESS = (
    "A twelve-year-old from Leeds became the youngest British chess champion on Sunday, beating a grandmaster in the "
    "final round after six hours of play. Her coach said she trains three hours a day after school."
)
MARATHON = (
    "More than 50,000 runners finished the London Marathon on Sunday, a world record for the race, and the winner "
    "of the men's event crossed the line in two hours and two minutes in cool, dry weather."
)
HOLD = "ECB holds interest rates at 2.5% as inflation cools"
CUT = "ECB cuts its deposit rate to 2.25% as inflation slows"
# article id: (title, date, url, text). The April story is told three times: the article, the same text under
# another title, and a reworded copy under the same title; the March story has a live page under its title.
STORIES = {
    "ecb/march.md": (HOLD, "2025-03-06", "https://example.org/ecb/march", MARCH),
    "ecb/march-live.md": (HOLD, "2025-03-06", None, MARCH_LIVE),
    "ecb/april.md": (CUT, "2025-04-17", "https://example.org/ecb/april", APRIL),
    "ecb/april-copy.md": ("ECB lowers rates in April", "2025-04-17", None, APRIL),
    "ecb/april-wire.md": (CUT, "2025-04-18", None, APRIL_REWORDED),
    "ecb/june.md": ("ECB cuts rates to 2% and sees inflation at target", "2025-06-05", "https://example.org/ecb/june",
                    JUNE),
    "sport/chess.md": ("Twelve-year-old wins national chess title", "2025-07-13", None, CHESS),
    "sport/marathon.md": ("Record number of runners finish the London Marathon", None, None, MARATHON),
}
APRIL_STORY = {"ecb/april.md", "ecb/april-copy.md", "ecb/april-wire.md"}


def write_story(folder: Path, article_id: str, title: str, date: str | None, url: str | None, text: str) -> None:
    path = folder / article_id
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = "".join(f"{key}: {value}\n" for key, value in (("date", date), ("url", url)) if value)
    path.write_text(f"# {title}\n\n{meta}\n{text}\n")


@pytest.fixture(scope="module")
def news(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Iterator[Library]:
    """A synced library over STORIES (FAISS; tests that add articles add their own and remove them)."""
    root = tmp_path_factory.mktemp("related")
    for article_id, story in STORIES.items():
        write_story(root / "articles", article_id, *story)
    library = Library(Settings(articles_dir=root / "articles", index_dir=root / "index"), embedder=embedder)
    library.sync()
    yield library
    library.store.close()


def ids(found: list) -> list[str]:
    return [article.article_id for article in found]


def test_the_closest_articles_come_first_with_their_title_date_link_and_similarity(news: Library) -> None:
    found = news.related("ecb/june.md", k=3)
    assert ids(found)[:2] == ["ecb/april-wire.md", "ecb/march.md"], "the same story first, other news after"
    similarities = [article.similarity for article in found]
    assert similarities == sorted(similarities, reverse=True) and similarities[1] > SAME_STORY > similarities[2]
    march = found[1]
    assert (march.title, march.date, march.url, march.source) == (HOLD, "2025-03-06", "https://example.org/ecb/march",
                                                                   "ecb/march.md")
    assert march.to_json()["similarity"] == round(march.similarity, 4)


def test_a_story_told_several_times_is_listed_once(news: Library) -> None:
    for article_id in ("ecb/june.md", "ecb/march.md", "sport/chess.md"):
        found = news.related(article_id, k=MAX_RELATED)
        assert len(APRIL_STORY & set(ids(found))) == 1, article_id
        assert len(found) == len(STORIES) - 4, "all but itself, two of the April three and one of the March titles"


def test_copies_of_the_article_itself_are_not_related_coverage(news: Library) -> None:
    assert not APRIL_STORY & set(ids(news.related("ecb/april.md", k=MAX_RELATED)))
    assert "ecb/march-live.md" not in ids(news.related("ecb/march.md", k=MAX_RELATED)), "same title, other text"
    assert "ecb/march.md" not in ids(news.related("ecb/march-live.md", k=MAX_RELATED))


def test_excluded_articles_and_their_copies_are_left_out(news: Library) -> None:
    found = news.related("ecb/june.md", k=MAX_RELATED, exclude={"ecb/april.md", "not/an/article.md"})
    assert not APRIL_STORY & set(ids(found)), "april.md is excluded, and the other two are its copies"
    assert ids(found)[0] == "ecb/march.md"


def test_more_on_this_story_lists_same_story_articles_the_answer_does_not_cite(news: Library) -> None:
    answer = news.answer("What did the ECB do with its deposit rate in June?", k=1)
    [source] = answer.sources
    assert source.hit.citation.article_id == "ecb/june.md" and not source.weak
    more = more_on_sources(answer, news.related)
    assert set(more) == {1}
    assert ids(more[1]) == ["ecb/april-wire.md", "ecb/march.md"], "above SAME_STORY only; sport is another story"
    reply = to_markdown(answer, more)
    assert (
        "\n\n   *More on this story:* ECB cuts its deposit rate to 2.25% as inflation slows (2025-04-18) · "
        "[ECB holds interest rates at 2.5% as inflation cools](https://example.org/ecb/march) (2025-03-06)"
    ) in reply
    wider = news.answer("What did the ECB do with its deposit rate in June?", k=4)
    listed = more_on_sources(wider, news.related)
    for articles in listed.values():
        assert not set(ids(articles)) & wider.article_ids, "what the answer cites is not listed again"
    under = [wider.sources[number - 1].hit.citation.article_id for number in listed]
    assert len(under) == len(set(under)), "one list per cited article, under its first source"


def test_more_on_this_story_shows_titles_as_text_and_links_only_http_urls() -> None:
    hostile = Related("a.md", "<img src=x onerror=alert(1)> [x](javascript:alert(2))", "2025-01-01",
                      "javascript:alert(3)", "a.md", None, 0.9)
    plain = Related("b.md", "B *bold*\nnext", None, "https://example.org/b", "b.md", None, 0.8)
    assert more_on_this_story([hostile, plain]) == (
        "*More on this story:* &lt;img src=x onerror=alert\\(1\\)&gt; \\[x\\]\\(javascript:alert\\(2\\)\\) "
        "(2025-01-01) · [B \\*bold\\* next](https://example.org/b)"
    )


def test_the_map_is_read_once_per_index_generation(news: Library) -> None:
    first = news.article_map()
    assert news.article_map() is first
    write_story(news.settings.articles_dir, "ecb/september.md", "ECB keeps rates at 2% in September", "2025-09-11",
                None, JUNE.replace("lowered its deposit rate to 2%", "kept its deposit rate at 2%"))
    try:
        news.sync()
        assert news.article_map() is not first
        assert "ecb/september.md" in ids(news.related("ecb/june.md", k=3))
    finally:
        (news.settings.articles_dir / "ecb/september.md").unlink()
        news.sync()
    assert "ecb/september.md" not in news.article_map().rows


@pytest.mark.parametrize("k", [0, -1, MAX_RELATED + 1, 10**9, True, 2.5, "3", None])
def test_an_impossible_k_is_refused_with_the_allowed_range(news: Library, k: object) -> None:
    with pytest.raises(QuestionError, match=f"k must be a whole number from 1 to {MAX_RELATED}"):
        news.related("ecb/june.md", k=k)  # type: ignore[arg-type]


@pytest.mark.parametrize("article_id", ["ecb/nope.md", "", "ECB/JUNE.MD", "x" * 100_000])
def test_an_unknown_article_id_says_what_an_id_is(news: Library, article_id: str) -> None:
    with pytest.raises(UnknownArticleError, match="No indexed article has the id") as raised:
        news.related(article_id)
    assert "path in the articles folder" in str(raised.value) and len(str(raised.value)) < 300
    assert isinstance(raised.value, QuestionError)


@pytest.mark.parametrize("article_id", [None, 3, ["ecb/june.md"]])
def test_an_article_id_that_is_not_text_is_refused(news: Library, article_id: object) -> None:
    with pytest.raises(QuestionError, match="The article id must be text"):
        news.related(article_id)  # type: ignore[arg-type]


def unit(*values: float) -> np.ndarray:
    vector = np.asarray(values, dtype=np.float32)
    return vector / np.linalg.norm(vector)


def article_map(vectors: dict[str, np.ndarray], titles: dict[str, str] | None = None) -> ArticleMap:
    """A map of hand-made unit vectors: the ranking rules without a model."""
    citations = [
        Citation(article_id, (titles or {}).get(article_id, article_id), article_id, None, None, None, 0, 0, 0, 0)
        for article_id in sorted(vectors)
    ]
    return ArticleMap.of(citations, np.vstack([vectors[citation.article_id] for citation in citations]))


def test_ranking_breaks_ties_by_id_and_reads_past_many_copies() -> None:
    tied, far = unit(1, 1, 0), unit(1, 0, 2)
    mapped = article_map({"a": unit(1, 0, 0), **{f"tie-{n:02d}": tied for n in range(40)}, "z-far": far, "b-far": far})
    # forty ties, all one text: the lowest id stands for them, and the next text comes after all of them
    assert ids(mapped.nearest("a", k=3)) == ["tie-00", "b-far"]


def test_excluded_articles_are_skipped_however_many() -> None:
    left_out = {f"e-{n:03d}": unit(1, 0.05 + n / 2000, 0, 0) for n in range(200)}
    mapped = article_map({"a": unit(1, 0, 0, 0), **left_out, "o": unit(1, 0, 1, 0), "last": unit(0, 0, 0, 1)})
    assert ids(mapped.nearest("a", k=2, exclude=set(left_out))) == ["o", "last"]


def test_near_copy_is_a_similarity_of_at_least_the_threshold_or_the_same_title() -> None:
    base = unit(1, 0)
    angle = float(np.arccos(NEAR_COPY))
    just_copy, just_not = (unit(np.cos(a), np.sin(a)) for a in (angle * 0.999, -angle * 1.001))  # on either side
    mapped = article_map(
        {"a": base, "copy": just_copy, "not-copy": just_not, "other": unit(0, 1), "same-title": unit(-1, 1)},
        titles={"a": "Storm  hits the COAST", "same-title": "storm hits the coast"},
    )
    assert ids(mapped.nearest("a", k=MAX_RELATED)) == ["not-copy", "other"]
    assert ids(mapped.nearest("a", k=MAX_RELATED, min_similarity=0.5)) == ["not-copy"]
