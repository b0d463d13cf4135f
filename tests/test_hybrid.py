"""Hybrid search, fusion, duplicates and filters."""

from __future__ import annotations

from pathlib import Path

import pytest

from qa import Filters, Library
from qa.errors import QuestionError
from qa.search import fuse


def test_fusion_rewards_rows_both_lists_rank_high() -> None:
    dense = [(1, 0.9), (2, 0.8), (3, 0.7)]
    lexical = [(3, 12.0), (4, 9.0), (1, 3.0)]
    fused = dict(fuse([dense, lexical]))
    assert max(fused, key=fused.get) in (1, 3)
    assert fused[1] > fused[2] and fused[3] > fused[4], "found by both beats found by one"
    assert fused[2] > 0 and fused[4] > 0


def test_fusion_puts_both_scales_on_one() -> None:
    """Multiplying one list's scores changes nothing: only their spread within the list counts."""
    dense = [(1, 0.9), (2, 0.5), (3, 0.45)]
    lexical = [(2, 30.0), (3, 10.0), (4, 9.0)]
    scaled = [(row, score * 1000) for row, score in lexical]
    assert [row for row, _ in fuse([dense, lexical])] == [row for row, _ in fuse([dense, scaled])]
    assert fuse([dense, lexical])[0][0] == 2


def test_fusion_of_one_empty_list_keeps_the_other_order() -> None:
    assert [row for row, _ in fuse([[(5, 1.0), (6, 0.5)], []])] == [5, 6]


@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
def test_every_mode_answers_the_seed_questions(seed_library: Library, mode: str) -> None:
    assert "Chevron" in seed_library.retrieve("Which US oil company can export Venezuelan crude?", 3, mode)[0].text


def test_bm25_finds_a_rare_exact_name(seed_library: Library) -> None:
    assert "Ramonet" in seed_library.retrieve("Ramonet", k=1, mode="bm25")[0].text


def test_an_unknown_mode_is_a_clear_error(seed_library: Library) -> None:
    with pytest.raises(QuestionError, match="mode must be one of dense, bm25, hybrid"):
        seed_library.retrieve("oil", mode="fuzzy")


def test_a_near_identical_syndicated_copy_is_shown_once_citing_both(library: Library, articles: Path) -> None:
    original = (articles / "glacier-study.json").read_text()
    copy = original.replace("Alpine glaciers lost a tenth", "Swiss glaciers shrink by a tenth").replace(
        "Example Science Desk", "Other Gazette"
    ).replace("said on Tuesday", "said on Tuesday.")
    (articles / "syndicated" ).mkdir()
    (articles / "syndicated" / "glaciers.json").write_text(copy)
    library.sync()
    hits = library.retrieve("How much ice have Swiss glaciers lost?", k=3)
    glacier = [h for h in hits if "glacier" in h.citation.article_id or "glacier" in h.text.lower()]
    assert len(glacier) == 1
    cited = {glacier[0].citation.article_id, *(c.article_id for c in glacier[0].also_in)}
    assert cited == {"glacier-study.json", "syndicated/glaciers.json"}


def test_a_filter_finds_matches_that_rank_far_down_without_it(seed_library: Library) -> None:
    question = "Which US oil company can export Venezuelan crude?"
    hits = seed_library.retrieve(question, k=2, mode="dense", filters=Filters(articles=("chess",)))
    assert [h.citation.article_id for h in hits] == ["briefs.jsonl#chess-prodigy"]


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        (dict(date_from="March 2005"), "date_from must be a date written YYYY-MM-DD"),
        (dict(date_from="2025-02-01", date_to="2025-01-01"), "is after date_to"),
    ],
)
def test_impossible_filters_are_clear_errors(filters: dict, message: str) -> None:
    with pytest.raises(QuestionError, match=message):
        Filters(**filters)
