"""Splitting bodies into passages: exact spans, whole sentences, size limits."""

from __future__ import annotations

from pathlib import Path

from hypothesis import example, given, settings
from hypothesis import strategies as st

from qa.articles import load_folder
from qa.embed import Embedder
from qa.passages import Splitter, paragraphs

SEED_START = "In a surprising shift of tone"


def texts(body: str, splitter: Splitter | None = None) -> list[str]:
    return [p.text for p in (splitter or Splitter()).split(body, "h")]


words = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=0, max_size=12)
bodies = st.lists(
    st.one_of(words, st.sampled_from([". ", "! ", "? ", "\n", "\n\n", " ", "U.S. ", "Mr. ", "3.5 ", "\t", "  "])),
    max_size=200,
).map("".join)


@settings(max_examples=300, deadline=None)
@given(body=bodies, size=st.integers(5, 60), overlap=st.integers(0, 2))
@example(body="\x1f0. ", size=5, overlap=0)  # an ASCII separator before a numbered item
def test_every_passage_is_the_exact_slice_of_the_body_it_claims(body: str, size: int, overlap: int) -> None:
    splitter = Splitter(words=size, overlap=overlap, max_tokens=40)
    passages = splitter.split(body, "h")
    for ordinal, passage in enumerate(passages):
        assert body[passage.start : passage.end] == passage.text
        assert passage.text.strip() == passage.text and passage.text
        assert passage.ordinal == ordinal
    if body.strip():
        assert passages, "a body with text has at least one passage"
        assert passages[0].start == len(body) - len(body.lstrip())
        assert passages[-1].end == len(body.rstrip())
    starts = [p.start for p in passages]
    assert starts == sorted(set(starts)), "passages move forward"


def test_abbreviations_and_decimals_do_not_end_sentences() -> None:
    body = (
        "Mr. Smith met U.S. officials on Jan. 5 in Washington. "
        "Growth was 2.5% in the U.K. last year. Dr. Jones disagreed."
    )
    spans = Splitter().sentences(body)
    assert [body[s.start : s.end] for s in spans] == [
        "Mr. Smith met U.S. officials on Jan. 5 in Washington.",
        "Growth was 2.5% in the U.K. last year.",
        "Dr. Jones disagreed.",
    ]


def test_passages_are_whole_sentences_of_about_the_target_size() -> None:
    sentence = "The council approved the new budget after a long debate on Tuesday. "
    body = sentence * 40  # 12 words a sentence, 480 words in all
    passages = texts(body, Splitter(words=60))
    assert all(p.endswith("Tuesday.") and p.startswith("The council") for p in passages)
    assert all(len(p.split()) <= 60 for p in passages)
    assert len(passages) == 8


def test_overlap_repeats_the_last_sentences_of_the_previous_passage() -> None:
    body = " ".join(f"Sentence number {n} is here." for n in range(1, 21))
    passages = texts(body, Splitter(words=20, overlap=1))
    for previous, following in zip(passages, passages[1:], strict=False):
        assert following.startswith(previous.rsplit(". ", 1)[-1].rstrip("."))


def test_paragraph_breaks_end_passages_once_they_are_half_full() -> None:
    first = "Talks resumed in Geneva on Monday with both delegations present. " * 7  # 70 words
    second = "Separately, the football season opened with a surprise win for the visitors. " * 4
    body = first.strip() + "\n\n" + second.strip()
    passages = Splitter(words=120).split(body, "h")
    assert [p.paragraph for p in passages] == [0, 1]
    assert passages[0].text == first.strip()


def test_single_line_paragraphs_count_when_there_are_no_blank_lines() -> None:
    assert paragraphs("One.\nTwo.\n\n") == [(0, 4), (5, 9)]
    assert paragraphs("One.\nstill one.\n\nTwo.") == [(0, 15), (17, 21)]


def test_no_passage_exceeds_what_the_model_reads(embedder: Embedder) -> None:
    splitter = Splitter(words=1000, max_tokens=embedder.max_tokens, count_tokens=embedder.count_tokens)
    run_on = " ".join(["supercalifragilistic antidisestablishmentarianism"] * 300)  # one endless sentence
    body = run_on + ". " + "Short sentence. " * 200 + "x" * 5000
    passages = splitter.split(body, "h")
    assert len(passages) > 3
    for passage in passages:
        assert body[passage.start : passage.end] == passage.text
        assert embedder.count_tokens(passage.text) + 2 <= embedder.max_tokens


def test_sentences_are_the_ones_pysbd_segment_finds(articles: Path) -> None:
    """The splitter calls pysbd's processor directly (its `segment()` is slow): same sentences."""
    import pysbd

    segmenter = pysbd.Segmenter(language="en", clean=False)
    splitter = Splitter(max_tokens=10_000)  # no sentence is cut for length
    bodies = [article.text for article in load_folder(articles).articles]
    bodies.append('Mr. Smith met U.S. officials on Jan. 5.  Growth was 2.5%!\nWhy? (See p. 3.) "Yes," he said... Then.')
    for body in bodies:
        pieces = [sentence.strip() for a, b in paragraphs(body) for sentence in segmenter.segment(body[a:b])]
        expected = [piece for piece in pieces if piece]
        assert [body[span.start : span.end] for span in splitter.sentences(body)] == expected


def test_each_passage_comes_with_its_length_in_word_pieces(articles: Path, embedder: Embedder) -> None:
    """The build embeds the longest passages first by this count: it is the tokenizer's own."""
    splitter = Splitter(words=40, max_tokens=embedder.max_tokens, count_tokens=embedder.count_tokens)
    counted = [pair for article in load_folder(articles).articles for pair in splitter.split_counted(article.text, "h")]
    assert len(counted) > 10
    for passage, tokens in counted:
        assert tokens == embedder.count_tokens(passage.text)
