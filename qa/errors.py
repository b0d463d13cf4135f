"""The one error hierarchy of the package: messages are written for people."""


class QAError(Exception):
    """Base class: anything the assistant reports to a user as a sentence."""


class ConfigError(QAError):
    """A setting is impossible (bad value, missing folder, unknown model)."""


class QuestionError(QAError):
    """The question cannot be asked (empty, too long)."""


class UnknownArticleError(QuestionError):
    """An article id that names no indexed article."""


class ArticleError(QAError):
    """One article file cannot be read; the rest of the folder still is."""


class StoreError(QAError):
    """The index on disk is missing, damaged or from another configuration."""


class BusyError(QAError):
    """Another process is already writing this index."""


class RatingError(QAError):
    """A rating cannot be stored or read (an impossible rating, or a broken or unwritable ratings file)."""
