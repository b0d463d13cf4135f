"""Which passages a search may return, said once for every backend.

`restrict` turns the user's `Filters` and a question's period into a `Restriction`: a conjunction of
clauses, each a choice of alternatives, each a few `Test`s on one article field. Every backend renders
it once in its own language (SQL in `qa.store.catalog`, a boolean expression in `qa.store.milvus_collections`);
the filter rules themselves live only here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..schema import Filters

Period = tuple[str | None, str | None]  # (first day, last day), ISO; undated articles always pass
Field = Literal["article_id", "title", "source", "publisher", "date"]
Op = Literal["equals", "starts_with", "contains", "on_or_after", "on_or_before", "missing"]


@dataclass(frozen=True)
class Test:
    """One test on an article field. title, source and publisher are compared in lower case (`value` is);
    "on_or_after" and "on_or_before" hold only for dated articles; "missing" ignores `value`."""

    field: Field
    op: Op
    value: str = ""


Alternative = tuple[Test, ...]  # holds when every test holds


@dataclass(frozen=True)
class Restriction:
    """A passage passes when one of its articles passes every clause; a clause passes when any of its
    alternatives does."""

    clauses: tuple[tuple[Alternative, ...], ...]


def restrict(filters: Filters | None, period: Period | None = None) -> Restriction | None:
    """The restriction of `filters` and `period` (undated articles always fall in a period); None = everything."""
    clauses: list[tuple[Alternative, ...]] = []
    if filters and filters.sources:
        alternatives: list[Alternative] = []
        for source in filters.sources:
            lowered = source.lower().strip("/")
            alternatives += [
                (Test("publisher", "equals", lowered),),
                (Test("source", "equals", lowered),),
                (Test("source", "starts_with", lowered + "/"),),
            ]
        clauses.append(tuple(alternatives))
    if filters and filters.articles:
        clauses.append(tuple(
            alternative
            for wanted in filters.articles
            for alternative in ((Test("article_id", "equals", wanted),), (Test("title", "contains", wanted.lower()),))
        ))
    if filters and filters.date_from:
        clauses.append(((Test("date", "on_or_after", filters.date_from),),))
    if filters and filters.date_to:
        clauses.append(((Test("date", "on_or_before", filters.date_to),),))
    if period is not None and (period[0] or period[1]):
        bounds = (Test("date", "on_or_after", period[0]),) if period[0] else ()
        bounds += (Test("date", "on_or_before", period[1]),) if period[1] else ()
        clauses.append(((Test("date", "missing"),), bounds))
    return Restriction(tuple(clauses)) if clauses else None


def escape_like(text: str) -> str:
    """`text` with LIKE's wildcards escaped by a backslash (SQLite with ESCAPE '\\', and Milvus)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
