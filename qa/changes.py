"""What a sync must change: the folder's articles compared with the index's, by content hash.

A first sync compares every article of the folder with every article of the index. A long-lived
library then keeps `Indexed`, what the index holds once the sync is done, with the index's manifest
(its generation); when the next sync finds that manifest unchanged, only the files read again (new,
edited or recently written ones) and the files gone from the folder are compared, so a sync that adds
or deletes one article costs what that article costs, not what the collection does.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from .articles import Folder
from .schema import Article

IndexedArticle = tuple[str, str, str]  # (record_hash, body_hash, file)


@dataclass(frozen=True)
class Changes:
    """The articles to add, update and remove, and the bodies whose passages come and go."""

    added: list[Article]
    updated: list[Article]
    removed: list[str]  # article ids
    new_bodies: dict[str, str]  # body_hash -> text
    old_bodies: list[str]

    def __bool__(self) -> bool:
        return bool(self.added or self.updated or self.removed or self.new_bodies or self.old_bodies)

    @property
    def lacks_bodies(self) -> bool:
        """Whether a body to embed is missing: its articles came from a file cache that keeps none."""
        return any(not text for text in self.new_bodies.values())

    @property
    def fresh(self) -> list[Article]:
        """The added and updated articles: the only ones that can bring a body the index lacks."""
        return self.added + self.updated


@dataclass
class Indexed:
    """What the index holds after a sync of this process: its articles, by file, and how many hold each
    body. Valid while the index's `version` (its manifest) is the one it was made for;
    None until a sync has filled it, and while one runs."""

    version: dict[str, object] | None = None
    articles: dict[str, IndexedArticle] = field(default_factory=dict)
    files: dict[str, list[str]] = field(default_factory=dict)  # file -> its article ids
    bodies: Counter[str] = field(default_factory=Counter)

    def reset(self, version: dict[str, object], articles: list[Article]) -> None:
        """Hold exactly `articles`, as the index at `version` does."""
        self.articles, self.files, self.bodies = {}, {}, Counter()
        self.add(articles)
        self.file(articles)
        self.version = version

    def add(self, articles: Iterable[Article]) -> None:
        for article in articles:
            self.articles[article.article_id] = (article.record_hash, article.body_hash, article.source)
            self.bodies[article.body_hash] += 1

    def remove(self, article_ids: Iterable[str]) -> None:
        for article_id in article_ids:
            _, body, _ = self.articles.pop(article_id)
            self.bodies[body] -= 1
            if not self.bodies[body]:
                del self.bodies[body]

    def file(self, articles: Iterable[Article]) -> None:
        for article in articles:
            self.files.setdefault(article.source, []).append(article.article_id)

    def apply(self, folder: Folder, changes: Changes, version: dict[str, object]) -> None:
        """Follow a sync of `changes` that left the index at `version`; `folder` is what it read."""
        self.remove(changes.removed + [article.article_id for article in changes.updated])
        self.add(changes.fresh)
        for name in _touched(folder, self):
            self.files.pop(name, None)
        self.file(folder.fresh)
        self.version = version


def full_changes(articles: list[Article], indexed: dict[str, tuple[str, str]], have: set[str]) -> Changes:
    """Compare every article of the folder with `indexed` (article_id -> (record_hash, body_hash)) and the
    index's body hashes `have`. A new body held only by articles without theirs (`Article.without_body`)
    comes with the text "" (see `Changes.lacks_bodies`)."""
    current = {article.article_id: article for article in articles}
    present: set[str] = set()
    new_bodies: dict[str, str] = {}
    for article in current.values():
        present.add(article.body_hash)
        if article.body_hash not in have and not new_bodies.get(article.body_hash):
            new_bodies[article.body_hash] = article.text
    return Changes(
        added=[a for key, a in current.items() if key not in indexed],
        updated=[a for key, a in current.items() if key in indexed and indexed[key][0] != a.record_hash],
        removed=[key for key in indexed if key not in current],
        new_bodies=new_bodies,
        old_bodies=[key for key in have if key not in present],
    )


def quick_changes(folder: Folder, indexed: Indexed) -> Changes | None:
    """Compare only the files read again and the files gone with `indexed`; None when that cannot tell
    (an article id also found in another file), and every article must be compared."""
    fresh = {article.article_id: article for article in folder.fresh}
    if len(fresh) != len(folder.fresh):
        return None
    before = [key for name in _touched(folder, indexed) for key in indexed.files.get(name, ())]
    added, updated = [], []
    for key, article in fresh.items():
        known = indexed.articles.get(key)
        if known is None:
            added.append(article)
        elif known[2] != article.source:
            return None
        elif known[0] != article.record_hash:
            updated.append(article)
    removed = [key for key in before if key not in fresh]
    counts: Counter[str] = Counter()
    for key in removed + [article.article_id for article in updated]:
        counts[indexed.articles[key][1]] -= 1
    texts = {}
    for article in added + updated:
        counts[article.body_hash] += 1
        texts.setdefault(article.body_hash, article.text)
    return Changes(
        added=added,
        updated=updated,
        removed=removed,
        new_bodies={body: text for body, text in texts.items() if not indexed.bodies.get(body)},
        old_bodies=[body for body, change in counts.items() if change < 0 and indexed.bodies[body] + change == 0],
    )


def _touched(folder: Folder, indexed: Indexed) -> set[str]:
    """The files read again this time and the indexed files the folder no longer has."""
    return set(folder.read) | (indexed.files.keys() - set(folder.files))
