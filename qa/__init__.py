"""Question answering over a folder of news articles, offline.

    >>> from qa import retrieve
    >>> hits = retrieve("Who interviewed Maduro?", k=3)
    >>> hits[0].citation.title
"""

from .assistant import Library, retrieve
from .config import Settings
from .errors import QAError
from .schema import Article, Citation, Filters, Hit, Passage

__all__ = ["Article", "Citation", "Filters", "Hit", "Library", "Passage", "QAError", "Settings", "retrieve"]
