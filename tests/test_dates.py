"""Time in questions, read against the newest article date."""

from __future__ import annotations

from datetime import date

import pytest

from qa import Library
from qa.dates import read_when

TODAY = date(2005, 3, 20)  # the newest article of a 2005 archive


@pytest.mark.parametrize(
    ("question", "start", "end"),
    [
        ("What happened in March 2005?", date(2005, 3, 1), date(2005, 3, 31)),
        ("Who won on 5 January 2005?", date(2005, 1, 5), date(2005, 1, 5)),
        ("What did Blair say on February 14, 2005?", date(2005, 2, 14), date(2005, 2, 14)),
        ("Which firms merged in 2004?", date(2004, 1, 1), date(2004, 12, 31)),
        ("What happened last week?", date(2005, 3, 13), date(2005, 3, 20)),
        ("What did the minister announce last month?", date(2005, 2, 1), date(2005, 2, 28)),
        ("What changed this year?", date(2005, 1, 1), date(2005, 3, 20)),
        ("Sales figures from last year?", date(2004, 1, 1), date(2004, 12, 31)),
        ("What was agreed in January?", date(2005, 1, 1), date(2005, 1, 31)),
        ("Who resigned in November?", date(2004, 11, 1), date(2004, 11, 30)),  # the latest November
        ("What happened before March 2005?", None, date(2005, 2, 28)),
        ("What has happened since 2004?", date(2004, 1, 1), None),
        ("Which shows opened after January 2005?", date(2005, 2, 1), None),
    ],
)
def test_periods_in_questions(question: str, start: date | None, end: date | None) -> None:
    when = read_when(question, TODAY)
    assert (when.start, when.end) == (start, end)


@pytest.mark.parametrize("question", ["What is the latest on the strike?", "Most recent news about Chelsea?"])
def test_latest_asks_for_recent_news_without_a_period(question: str) -> None:
    when = read_when(question, TODAY)
    assert when.recent and when.start is None and when.end is None


@pytest.mark.parametrize("question", ["Who interviewed Maduro?", "How many people died in 114 strikes?",
                                      "What did the 2004 report say?", "May I ask about oil?"])
def test_questions_without_time_have_none(question: str) -> None:
    assert not read_when(question, TODAY)


def test_relative_dates_need_a_dated_collection() -> None:
    assert not read_when("What happened last week?", None)
    assert read_when("What happened in March 2005?", None).start == date(2005, 3, 1)


def test_a_period_narrows_dated_articles_and_keeps_undated_ones(seed_library: Library) -> None:
    hits = seed_library.retrieve("What happened in March 2025?", k=20)
    dates = {hit.citation.article_id: hit.citation.date for hit in hits}
    assert dates.get("ecb-rates.md") == "2025-03-06"
    assert all(day is None or day.startswith("2025-03") for day in dates.values())
    assert "venezuela-maduro-us-negotiations.txt" in dates, "undated articles are never dropped"


def test_latest_prefers_the_newest_article_on_the_topic(library: Library, articles) -> None:  # type: ignore[no-untyped-def]
    (articles / "old-strike.txt").write_text(
        "Dutch rail strike called off\ndate: 2025-01-10\n\nA planned Dutch rail strike over pay was called off "
        "on Friday after unions and the NS operator reached a deal, and trains will run as normal.\n"
    )
    latest = library.retrieve("What is the latest on the Dutch rail strike?", k=2)
    assert [hit.citation.date for hit in latest] == ["2025-06-02", "2025-01-10"]
