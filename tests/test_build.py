"""Incremental sync: only what changed is embedded, the rest is kept; the index persists."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from qa import Library, Settings
from qa.embed import Embedder
from qa.errors import BusyError, ConfigError, StoreError

ARTICLE = "Harbour reopens after storm\n\nThe harbour at Dunmore reopened on Friday after storm repairs.\n"


def passage_count(library: Library) -> int:
    return library.store.counts()["passages"]


def test_first_sync_indexes_every_article(library: Library) -> None:
    report = library.sync()
    assert (report.added, report.updated, report.removed, report.unchanged) == (6, 0, 0, 0)
    assert report.passages_embedded == report.passages_total == passage_count(library) > 6
    assert library.status().articles == 6 and library.status().model == "all-MiniLM-L6-v2"


def test_a_second_sync_without_changes_embeds_nothing(library: Library) -> None:
    library.sync()
    embedded = library.embedder.texts_embedded
    report = library.sync()
    assert (report.added, report.updated, report.removed, report.unchanged) == (0, 0, 0, 6)
    assert report.passages_embedded == 0 and library.embedder.texts_embedded == embedded


def test_adding_an_article_embeds_only_its_passages(library: Library, articles: Path) -> None:
    library.sync()
    before = passage_count(library)
    embedded = library.embedder.texts_embedded
    (articles / "harbour.txt").write_text(ARTICLE)
    report = library.sync()
    assert (report.added, report.updated, report.removed, report.unchanged) == (1, 0, 0, 6)
    assert report.passages_embedded == 1 == library.embedder.texts_embedded - embedded
    assert passage_count(library) == before + 1
    assert library.retrieve("When did the Dunmore harbour reopen?", k=1)[0].citation.article_id == "harbour.txt"


def test_changing_an_article_replaces_its_passages(library: Library, articles: Path) -> None:
    library.sync()
    before = passage_count(library)
    path = articles / "ecb-rates.md"
    path.write_text(path.read_text().replace("2.5% on Thursday", "2.25% on Thursday"))
    report = library.sync()
    assert (report.added, report.updated, report.removed, report.unchanged) == (0, 1, 0, 5)
    assert report.passages_embedded == report.passages_added == report.passages_removed
    assert passage_count(library) == before
    texts = [hit.text for hit in library.retrieve("ECB deposit rate", k=3)]
    assert any("2.25% on Thursday" in text for text in texts)
    assert not any("2.5% on Thursday" in text for text in texts)


def test_deleting_an_article_removes_its_passages_without_embedding(library: Library, articles: Path) -> None:
    library.sync()
    embedded = library.embedder.texts_embedded
    (articles / "glacier-study.json").unlink()
    report = library.sync()
    assert (report.added, report.updated, report.removed, report.unchanged) == (0, 0, 1, 5)
    assert report.passages_removed >= 1 and library.embedder.texts_embedded == embedded
    hits = library.retrieve("How much ice did Swiss glaciers lose?", k=10)
    assert all(hit.citation.article_id != "glacier-study.json" for hit in hits)


def test_a_metadata_change_updates_the_citation_without_embedding(library: Library, articles: Path) -> None:
    library.sync()
    embedded = library.embedder.texts_embedded
    path = articles / "ecb-rates.md"
    path.write_text(path.read_text().replace("author: Anna Keller", "author: A. Keller"))
    report = library.sync()
    assert report.updated == 1 and report.passages_embedded == 0 == library.embedder.texts_embedded - embedded


def test_identical_texts_in_two_files_are_embedded_once_and_cite_both(library: Library, articles: Path) -> None:
    library.sync()
    shutil.copy(articles / "ecb-rates.md", articles / "ecb-rates-copy.md")
    report = library.sync()
    assert report.added == 1 and report.passages_added == 0 and report.passages_embedded == 0
    hit = library.retrieve("What did the ECB do with interest rates?", k=1)[0]
    cited = {hit.citation.article_id, *(c.article_id for c in hit.also_in)}
    assert cited == {"ecb-rates.md", "ecb-rates-copy.md"}


def test_the_index_persists_and_a_new_process_needs_no_embedding(library: Library, tmp_path: Path) -> None:
    library.sync()
    expected = [hit.to_json() for hit in library.retrieve("Who interviewed Maduro?", k=3)]
    fresh = Library(library.settings, embedder=Embedder())
    assert [hit.to_json() for hit in fresh.retrieve("Who interviewed Maduro?", k=3)] == expected
    assert fresh.embedder.texts_embedded == 0 and fresh.embedder.queries_embedded >= 1  # questions only


def test_other_splitter_settings_rebuild_everything_and_say_why(library: Library) -> None:
    library.sync()
    other = Library(replace(library.settings, passage_words=60),
                    embedder=library.embedder)
    report = other.sync()
    assert report.rebuilt_because and "passage_words 120 -> 60" in report.rebuilt_because
    assert report.added == 6 and "Full rebuild" in report.summary()


def test_the_manifest_records_how_the_vectors_were_made_and_later_syncs_follow_it(
    articles: Path, tmp_path: Path
) -> None:
    settings = Settings(articles_dir=articles, index_dir=tmp_path / "index")
    first = Library(settings, embedder=Embedder(precision="fp32", passage_encoder="torch", query_encoder="torch"))
    first.sync()
    recorded = first.store.manifest()["encoder"]
    assert recorded["passages"] == "torch-fp32"
    assert recorded["reason"] == "passage_encoder torch asked for; precision fp32 asked for"
    assert recorded["versions"]["torch"] != "-" and first.status().to_json()["encoder"] == recorded
    first.store.close()
    (articles / "harbour.txt").write_text(ARTICLE)
    later = Library(settings, embedder=Embedder(query_encoder="torch"))  # "auto" passages: follows, never times
    assert later.sync().passages_embedded > 0
    assert later.embedder.plan().passages == "torch-fp32" and later.store.manifest()["encoder"] == recorded
    later.store.close()


def test_an_explicit_rebuild_reuses_the_cached_vectors(library: Library) -> None:
    library.sync()
    embedded = library.embedder.texts_embedded
    report = library.sync(rebuild=True)
    assert report.rebuilt_because == "a rebuild was asked for" and report.added == 6
    assert report.passages_embedded == 0 and library.embedder.texts_embedded == embedded


def test_a_second_writer_is_told_to_wait(library: Library) -> None:
    with library.store.writing():
        with pytest.raises(BusyError, match="being updated by process"):
            library.sync()


def test_a_sync_only_reads_the_articles_folder(library: Library) -> None:
    folder = library.settings.articles_dir

    def snapshot() -> dict[str, tuple[bytes, int]]:
        return {str(path.relative_to(folder)): (path.read_bytes(), path.stat().st_mtime_ns)
                for path in sorted(folder.rglob("*")) if path.is_file()}

    before = snapshot()
    library.sync()
    (folder / "harbour.txt").write_text(ARTICLE)
    before["harbour.txt"] = snapshot()["harbour.txt"]
    library.sync(rebuild=True)
    assert snapshot() == before


@pytest.mark.parametrize("target_exists", [True, False], ids=["to a file", "dangling"])
def test_a_symlink_at_the_lock_path_is_refused_and_its_target_left_alone(
    library: Library, tmp_path: Path, target_exists: bool
) -> None:
    target = tmp_path / "elsewhere.txt"
    if target_exists:
        target.write_text("somebody else's file\n")
    library.settings.index_dir.mkdir(parents=True)
    (library.settings.index_dir / ".lock").symlink_to(target)
    with pytest.raises(StoreError, match=r"\.lock is a symbolic link, which the index never follows\. Delete"):
        library.sync()
    assert target.read_text() == "somebody else's file\n" if target_exists else not target.exists()


def test_a_missing_articles_folder_is_a_clear_error(tmp_path: Path, embedder: Embedder) -> None:
    library = Library(Settings(tmp_path / "nope", tmp_path / "index"), embedder=embedder)
    with pytest.raises(ConfigError, match="does not exist"):
        library.sync()


def test_a_damaged_faiss_file_is_rebuilt_from_stored_vectors(faiss_library: Library) -> None:
    library = faiss_library
    library.sync()
    expected = [hit.text for hit in library.retrieve("Which US oil company can export Venezuelan crude?", k=3)]
    faiss_file = next(library.settings.index_dir.glob("vectors-*.faiss"))
    faiss_file.write_bytes(faiss_file.read_bytes()[:100])
    fresh = Library(library.settings, embedder=Embedder())
    assert [hit.text for hit in fresh.retrieve("Which US oil company can export Venezuelan crude?", k=3)] == expected
    assert fresh.embedder.texts_embedded == 0  # questions only: no passage re-embedded
