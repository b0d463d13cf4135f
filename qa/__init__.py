"""Question answering over a folder of news articles, offline.

    >>> from qa import retrieve
    >>> hits = retrieve("Who interviewed Maduro?", k=3)
    >>> hits[0].citation.title
"""

from .assistant import Library, retrieve
from .config import Settings
from .errors import QAError
from .schema import (
    Answer,
    Article,
    Citation,
    Filters,
    Hit,
    IndexCheck,
    Passage,
    Quote,
    Related,
    Source,
    Status,
    SyncReport,
    Timeline,
    TimelineEntry,
)

__all__ = [
    "Answer", "Article", "Citation", "Filters", "Hit", "IndexCheck", "Library", "Passage", "QAError", "Quote",
    "Related", "Settings", "Source", "Status", "SyncReport", "Timeline", "TimelineEntry", "retrieve",
]
