"""Sentence vectors: embedded once by the sync, reused by every answer, refilled when lost."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from qa import Library
from qa.sentences import SENTENCES_FILE


def stored_articles(index: Path) -> set[str]:
    with sqlite3.connect(index / SENTENCES_FILE) as db:
        return {article for (article,) in db.execute("SELECT DISTINCT article_id FROM sentences")}


def test_the_sync_embeds_the_sentences_so_answering_embeds_none(faiss_library: Library) -> None:
    faiss_library.sync()
    assert "venezuela-maduro-us-negotiations.txt" in stored_articles(faiss_library.settings.index_dir)
    assert faiss_library.embedder.answers.sentences_embedded > 0
    before = faiss_library.embedder.answers.sentences_embedded
    answer = faiss_library.answer("Who interviewed Maduro?", k=3)
    assert answer.found and "Ramonet" in answer.quotes[0].text
    assert faiss_library.embedder.answers.sentences_embedded == before  # only the question was encoded


def test_a_removed_article_takes_its_sentences_with_it(faiss_library: Library) -> None:
    faiss_library.sync()
    (faiss_library.settings.articles_dir / "glacier-study.json").unlink()
    faiss_library.sync()
    stored = stored_articles(faiss_library.settings.index_dir)
    assert "glacier-study.json" not in stored and "venezuela-maduro-us-negotiations.txt" in stored


def test_an_edited_article_keeps_only_its_new_sentences(faiss_library: Library) -> None:
    faiss_library.sync()
    index = faiss_library.settings.index_dir
    with sqlite3.connect(index / SENTENCES_FILE) as db:
        before = db.execute("SELECT COUNT(*) FROM sentences WHERE article_id = 'ecb-rates.md'").fetchone()[0]
    (faiss_library.settings.articles_dir / "ecb-rates.md").write_text(
        "# ECB holds rates\n\nThe European Central Bank kept its interest rates unchanged on Thursday.\n"
    )
    faiss_library.sync()
    with sqlite3.connect(index / SENTENCES_FILE) as db:
        rows = db.execute("SELECT spans FROM sentences WHERE article_id = 'ecb-rates.md'").fetchall()
    assert before >= 1 and len(rows) == 1  # the one passage of the new text; the old ones are gone
    assert "venezuela-maduro-us-negotiations.txt" in stored_articles(index)


def test_lost_sentence_vectors_are_embedded_again_on_first_use(faiss_library: Library) -> None:
    faiss_library.sync()
    first = faiss_library.answer("Who interviewed Maduro?", k=3)
    faiss_library.sentences.close()
    (faiss_library.settings.index_dir / SENTENCES_FILE).unlink()
    before = faiss_library.embedder.answers.sentences_embedded
    again = faiss_library.answer("Who interviewed Maduro?", k=3)
    assert faiss_library.embedder.answers.sentences_embedded > before
    assert [q.text for q in again.quotes] == [q.text for q in first.quotes]
    assert (faiss_library.settings.index_dir / SENTENCES_FILE).is_file()


def test_an_index_without_sentence_vectors_gets_them_at_the_next_sync(faiss_library: Library) -> None:
    faiss_library.sync()
    faiss_library.sentences.close()
    (faiss_library.settings.index_dir / SENTENCES_FILE).unlink()
    report = faiss_library.sync()  # nothing changed in the articles folder
    assert report.passages_embedded == 0
    assert faiss_library.sentences.count() == faiss_library.store.counts()["passages"]
    before = faiss_library.embedder.answers.sentences_embedded
    faiss_library.answer("Who interviewed Maduro?", k=3)
    assert faiss_library.embedder.answers.sentences_embedded == before


def test_vectors_of_another_model_are_dropped_when_the_file_opens(faiss_library: Library, tmp_path: Path) -> None:
    from qa.sentences import PassageText, SentenceVectors

    passage = PassageText("Title", "One sentence here. Another sentence there.", "a.txt")
    first = SentenceVectors(tmp_path, faiss_library.embedder, "model-a")
    first.fill([passage])
    assert first.count() == 1
    first.close()
    assert SentenceVectors(tmp_path, faiss_library.embedder, "model-a").count() == 1
    assert SentenceVectors(tmp_path, faiss_library.embedder, "model-b").count() == 0
