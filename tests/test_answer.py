"""Composing answers: verbatim quotes with [n] markers, checkable sources, honest "not found", follow-ups."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from qa import Library, Settings
from qa.answer import (
    CALIBRATED_PASSAGES,
    NOT_FOUND_THRESHOLD,
    Answer,
    Composer,
    contextual_query,
    is_follow_up,
    size_bar,
)
from qa.articles import load_folder
from qa.embed import Embedder
from qa.errors import QuestionError
from qa.reply import NOT_FOUND, to_markdown


@pytest.fixture(scope="module")
def composer(seed_library: Library) -> Composer:
    return Composer(seed_library)


def ask(composer: Composer, *conversation: str, k: int = 5) -> Answer:
    """The answer to the last question of a conversation."""
    *earlier, question = conversation
    return composer.answer(question, k, earlier)


def quoted(answer: Answer) -> str:
    return " ".join(quote.text for quote in answer.quotes)


def test_who_interviewed_maduro_quotes_the_sentence_that_names_ignacio_ramonet(composer: Composer) -> None:
    answer = ask(composer, "Who interviewed Maduro?")
    assert answer.found and answer.best >= NOT_FOUND_THRESHOLD
    assert "Ignacio Ramonet" in answer.quotes[0].text
    assert 1 <= len(answer.quotes) <= 3


def test_quotes_are_exact_substrings_of_the_passage_and_of_the_article(composer: Composer) -> None:
    folder = load_folder(composer.library.settings.articles_dir)
    bodies = {article.article_id: article.text for article in folder.articles}
    for question in ("Who interviewed Maduro?", "What is the ECB deposit rate?", "Who designed the lighthouse?"):
        answer = ask(composer, question)
        for quote in answer.quotes:
            hit = answer.sources[quote.number - 1].hit
            assert hit.text[quote.start : quote.end] == quote.text
            at = hit.citation.start + quote.start
            assert bodies[hit.citation.article_id][at : at + len(quote.text)] == quote.text


def test_the_reply_marks_each_sentence_with_the_number_of_an_existing_source(composer: Composer) -> None:
    answer = ask(composer, "How much ice did Swiss glaciers lose?", k=3)
    reply = to_markdown(answer)
    first_line = reply.split("\n")[0]
    markers = [int(number) for number in re.findall(r"\[(\d+)\]", first_line)]
    assert markers == [quote.number for quote in answer.quotes]
    assert all(1 <= number <= len(answer.sources) for number in markers)
    assert "**Sources**" in reply and "1. **[Alpine glaciers lost a tenth of their ice in two years](" in reply


def test_each_source_shows_title_link_date_paragraph_relevance_and_highlighted_passage(composer: Composer) -> None:
    reply = to_markdown(ask(composer, "What is the ECB deposit rate?", k=2))
    source = reply.split("**Sources**")[1]
    title = "ECB holds interest rates at 2.5% as inflation cools"
    assert f"[{title}](https://example.org/news/ecb-holds-rates#:~:text=" in source
    assert "2025-03-06 · Example Wire · paragraph 1, passage 1 · relevance 0." in source
    assert "<mark>The European Central Bank kept its main deposit rate at 2.5% on Thursday" in source


def test_the_number_of_sources_follows_k(composer: Composer) -> None:
    assert len(ask(composer, "rail strike in the Netherlands", k=1).sources) == 1
    assert len(ask(composer, "rail strike in the Netherlands", k=4).sources) == 4


@pytest.mark.parametrize(
    "question",
    ["Who won the football match last night?", "What were yesterday's Premier League results?",
     "How do I bake a chocolate cake?", "What is a good recipe for vegetable lasagne?"],
)
def test_off_topic_questions_get_an_honest_not_found_with_weak_matches(composer: Composer, question: str) -> None:
    answer = ask(composer, question, k=3)
    assert not answer.found and answer.quotes == ()
    assert all(source.weak for source in answer.sources) and len(answer.sources) == 3
    reply = to_markdown(answer)
    assert reply.startswith(f"**{NOT_FOUND}**")
    assert "Nearest passages (weak matches)" in reply and reply.count("*weak match*") == 3


def test_a_follow_up_is_searched_with_the_question_it_follows(composer: Composer) -> None:
    offer = ask(composer, "Who interviewed Maduro?", "What did he offer the US?")
    assert offer.query == "Who interviewed Maduro? What did he offer the US?"
    assert "oil" in quoted(offer) or "drug-trafficking agreement" in quoted(offer)
    aired = ask(composer, "Who interviewed Maduro?", "What did he offer the US?", "When did it air?")
    assert "New Year’s Eve" in quoted(aired)
    assert "Follow-up: searched as" in to_markdown(aired)


@pytest.mark.parametrize(
    ("conversation", "expected"),
    [
        (("What is the ECB deposit rate?", "Who is its president?"), "Christine Lagarde"),
        (("How much ice did Swiss glaciers lose?", "Which of them have disappeared?"), "Pizol"),
        (("Who designed the Muckle Flugga lighthouse?", "How much did its restoration cost?"), "£1.2 million"),
        (("Why did Dutch rail workers go on strike?", "When will they be back at work?"), "resume on Tuesday"),
    ],
)
def test_multi_turn_conversations_answer_the_follow_up(
    composer: Composer, conversation: tuple[str, ...], expected: str
) -> None:
    answer = ask(composer, *conversation)
    assert answer.found and expected in quoted(answer)


def test_a_new_topic_is_not_mixed_with_the_previous_question(composer: Composer) -> None:
    answer = ask(composer, "Who interviewed Maduro?", "How much ice did Swiss glaciers lose?")
    assert answer.query == "How much ice did Swiss glaciers lose?" and "10%" in quoted(answer)


@pytest.mark.parametrize(
    ("question", "follow_up"),
    [("What did he offer the US?", True), ("When did it air?", True), ("And the date?", True), ("Why?", True),
     ("Who is its president?", True), ("Who interviewed Maduro?", False), ("What is the ECB deposit rate?", False),
     ("Which company was the only one that could export crude?", False)],
)
def test_short_or_pronoun_led_questions_are_follow_ups(question: str, follow_up: bool) -> None:
    assert is_follow_up(question) is follow_up


def test_context_walks_back_over_earlier_follow_ups_to_the_topic() -> None:
    earlier = ["What is the ECB deposit rate?", "Who interviewed Maduro?", "What did he offer?"]
    joined = contextual_query("When did it air?", earlier)
    assert joined == "Who interviewed Maduro? What did he offer? When did it air?"
    assert contextual_query("When did it air?", []) == "When did it air?"


def test_sentences_are_embedded_once_and_then_reused(seed_library: Library) -> None:
    composer = Composer(seed_library)
    ask(composer, "What did Christine Lagarde tell reporters?")
    before = seed_library.embedder.texts_embedded
    ask(composer, "What did Christine Lagarde tell reporters?")
    assert seed_library.embedder.texts_embedded - before <= 2  # the question itself, nothing else


def test_a_question_about_names_no_article_mentions_is_not_answered(composer: Composer) -> None:
    answer = ask(composer, "What did Barack Obama say about the interest rate decision?")
    assert not answer.found and answer.unknown == ("Barack Obama",)
    assert "never mention Barack Obama" in to_markdown(answer)


def test_one_known_name_beside_an_unknown_one_is_taken_for_a_misspelling(composer: Composer) -> None:
    answer = ask(composer, "Which journalist from Spain interviewed Maduro for Telesurr?")
    assert answer.found and answer.unknown == () and "Ramonet" in quoted(answer)


def test_the_words_of_a_longer_name_must_meet_in_one_passage(embedder: Embedder, tmp_path: Path) -> None:
    (tmp_path / "articles").mkdir()
    (tmp_path / "articles" / "founder.txt").write_text(
        "Web entrepreneurs\n\nMartha Lane Fox, who co-founded the travel site lastminute.com, is to step down "
        "as its managing director, the company said on Monday.\n")
    (tmp_path / "articles" / "broker.txt").write_text(
        "Broker results\n\nThe broker Collins Stewart said its profits rose by a fifth last year, helped by "
        "busier stock markets in London.\n")
    library = Library(Settings(articles_dir=tmp_path / "articles", index_dir=tmp_path / "index"), embedder=embedder)
    assert library.answer("Which website did Martha Lane Fox start?", k=1).found
    apart = library.answer("Why was Martha Stewart sent to prison?", k=1)  # "Martha" and "Stewart" in two articles
    assert not apart.found and apart.unknown == ("Martha Stewart",)


def test_a_nearly_right_spelling_of_a_name_counts_as_the_name(embedder: Embedder, tmp_path: Path) -> None:
    library = one_article(tmp_path, embedder, "City hall\n\nThe Warsaw City Council has 60 members, elected "
                          "every four years, and meets in the Palace of Culture.\n")
    answer = library.answer("How many members are on the Warsaw City Counil?", k=1)
    assert answer.found and answer.unknown == () and "60 members" in answer.quotes[0].text


def test_a_misspelt_one_word_name_counts_as_the_name_in_a_retrieved_passage(embedder: Embedder, tmp_path: Path) -> None:
    library = one_article(tmp_path, embedder, SEED.read_text(encoding="utf-8"))
    misspelt = library.answer("What did Madurro say he was ready to discuss with the Americans?", k=3)
    assert misspelt.found and misspelt.unknown == ()
    unknown = library.answer("Which company makes ChatGPT?", k=3)
    assert not unknown.found and unknown.unknown == ("ChatGPT",)


def test_a_smaller_collection_asks_less_similarity_of_its_closest_sentence() -> None:
    bars = [size_bar(passages) for passages in (1, 9, 100, 1_000, CALIBRATED_PASSAGES, 1_000_000)]
    assert bars == sorted(bars) and bars[-2] == bars[-1] == NOT_FOUND_THRESHOLD
    assert 0.2 < bars[1] < NOT_FOUND_THRESHOLD - 0.05  # one article of nine passages


def test_one_article_answers_a_question_a_large_collection_would_refuse(embedder: Embedder, tmp_path: Path) -> None:
    library = one_article(tmp_path, embedder, SEED.read_text(encoding="utf-8"))
    question = "How has Washington officially labelled the government in Caracas?"
    answer = library.answer(question, k=3)
    assert answer.threshold == size_bar(library.passage_total()) and library.passage_total() < 20
    assert answer.found and answer.best < NOT_FOUND_THRESHOLD and "state sponsor of terrorism" in quoted(answer)
    assert not Composer(library, threshold=NOT_FOUND_THRESHOLD).answer(question, k=3).found
    assert not library.answer("What is a good recipe for vegetable lasagne?", k=3).found


def test_the_passage_count_behind_the_bar_follows_the_index(embedder: Embedder, tmp_path: Path) -> None:
    library = one_article(tmp_path, embedder, "Harbour\n\nThe harbour opened in 1900 with two piers.\n")
    library.sync()
    assert library.passage_total() == 1
    (tmp_path / "articles" / "second.txt").write_text("Lighthouse\n\nThe lighthouse was lit in 1901.\n")
    library.sync()
    assert library.passage_total() == 2


def test_a_model_number_must_occur_with_its_name(embedder: Embedder, tmp_path: Path) -> None:
    library = one_article(tmp_path, embedder, "Console sales\n\nSony sold 4.5 million PlayStation 2 consoles in "
                          "Europe over Christmas, more than any other games machine, the firm said on Monday.\n")
    assert library.answer("How many PlayStation 2 consoles were sold?", k=1).found
    later = library.answer("How many PlayStation 5 consoles were sold?", k=1)
    assert not later.found and later.unknown == ("PlayStation 5",)


def test_a_common_known_name_does_not_vouch_for_an_unknown_one(embedder: Embedder, tmp_path: Path) -> None:
    (tmp_path / "articles").mkdir()
    for number, (maker, model) in enumerate([("Ford", "Focus"), ("Vauxhall", "Astra"), ("Nissan", "Micra")]):
        (tmp_path / "articles" / f"car-{number}.txt").write_text(
            f"{maker} prices\n\nThe {maker} {model} costs £14,000 in Britain, the firm said on Monday.\n"
        )
    library = Library(Settings(articles_dir=tmp_path / "articles", index_dir=tmp_path / "index"), embedder=embedder)
    common = Composer(library, common_name=3)  # "Britain" is in all 3 passages: a common name here
    assert common.answer("How much does a Ford Focus cost in Britain?", k=1).found
    unknown = common.answer("How much does a Tesla Model 3 cost in Britain?", k=1)
    assert not unknown.found and unknown.unknown == ("Tesla Model 3",)
    rare = Composer(library, common_name=4)  # not common: a known name beside an unknown one vouches for it
    assert rare.answer("How much does a Tesla Model 3 cost in Britain?", k=1).unknown == ()


def test_a_year_no_retrieved_passage_mentions_is_not_answered(embedder: Embedder, tmp_path: Path) -> None:
    library = one_article(tmp_path, embedder, "Carmaker profits\n\nThe carmaker's profit rose 12% in 2004 to "
                          "1.2 billion euros, helped by strong sales of small cars in Italy and Spain.\n")
    assert library.answer("By how much did the carmaker's profit grow in 2004?", k=1).found
    later = library.answer("By how much did the carmaker's profit grow in 2010?", k=1)
    assert not later.found and later.unknown == ("2010",)


def test_a_year_the_collection_rarely_mentions_must_be_in_a_source(embedder: Embedder, tmp_path: Path) -> None:
    (tmp_path / "articles").mkdir()
    for name, text in [
        ("profit", "Carmaker profits\n\nThe carmaker's profit rose 12% in 2004 to 1.2 billion euros, helped by "
                   "strong sales of small cars in Italy and Spain.\n"),
        ("plant", "New plant\n\nThe carmaker will open a new factory in Poland in 2010, creating 3,000 jobs.\n"),
        ("stadium", "Stadium plans\n\nThe city hopes its new football stadium will be finished by 2010.\n"),
    ]:
        (tmp_path / "articles" / f"{name}.txt").write_text(text)
    library = Library(Settings(articles_dir=tmp_path / "articles", index_dir=tmp_path / "index"), embedder=embedder)
    question = "By how much did the carmaker's profit grow in 2010?"
    rare = Composer(library, common_name=3).answer(question, k=1)  # 2010 is in 2 of 3 passages: rare here
    assert "profit rose" in rare.sources[0].hit.text  # the one source does not mention 2010
    assert not rare.found and rare.unknown == ("2010",)
    common = Composer(library, common_name=2).answer(question, k=1)  # common: any retrieved passage vouches
    assert common.found and common.unknown == ()


def test_sources_are_ordered_by_their_best_sentence_and_quotes_come_from_them(composer: Composer) -> None:
    answer = ask(composer, "Who interviewed Maduro?", k=3)
    best = [source.relevance for source in answer.sources]
    assert best == sorted(best, reverse=True)
    assert {quote.number for quote in answer.quotes} <= {source.number for source in answer.sources}
    assert all(0.0 < quote.score <= 1.0 for quote in answer.quotes)


def test_library_answer_is_the_answer_the_chat_shows(seed_library: Library) -> None:
    answer = seed_library.answer("Who interviewed Maduro?", k=2)
    assert answer.found and "Ignacio Ramonet" in answer.quotes[0].text and len(answer.sources) == 2
    assert answer.to_json()["quotes"][0]["text"] == answer.quotes[0].text


SEED = Path(__file__).resolve().parent / "fixtures" / "articles" / "venezuela-maduro-us-negotiations.txt"


def one_article(tmp_path: Path, embedder: Embedder, text: str) -> Library:
    """A library over one undated article."""
    (tmp_path / "articles").mkdir()
    (tmp_path / "articles" / "article.txt").write_text(text)
    return Library(Settings(articles_dir=tmp_path / "articles", index_dir=tmp_path / "index"), embedder=embedder)


@pytest.mark.parametrize("k", [0, 101, 2.5])
def test_an_impossible_number_of_sources_is_refused_with_a_sentence(composer: Composer, k: object) -> None:
    with pytest.raises(QuestionError, match="k must be a whole number from 1 to 100"):
        composer.answer("Who interviewed Maduro?", k)  # type: ignore[arg-type]


def test_the_other_passages_of_the_top_articles_join_the_candidates(seed_library: Library) -> None:
    composer = Composer(seed_library, candidates=2)
    first = seed_library.retrieve("Who interviewed Maduro?", 2)
    hits = composer.candidate_hits("Who interviewed Maduro?", k=1)
    places = [(hit.citation.article_id, hit.citation.start) for hit in hits]
    assert [hit.text for hit in hits[:2]] == [hit.text for hit in first] and len(set(places)) == len(places)
    top = {hit.citation.article_id for hit in first}
    assert len(hits) > 2 and {hit.citation.article_id for hit in hits[2:]} <= top
    assert all(hit.score == min(h.score for h in first) for hit in hits[2:])  # ranked as the weakest found
