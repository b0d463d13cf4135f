"""Time in questions: "in March 2005", "last week", "since 2004", "latest", by offline rules.

Relative expressions are read against the newest article date (the collection's "now"), not
the clock: a 2005 archive asked about "last month" means the month before its newest story.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, timedelta

MONTHS = {name.lower(): number for number, name in enumerate(calendar.month_name) if name}
MONTHS |= {name.lower(): number for number, name in enumerate(calendar.month_abbr) if name}
MONTHS["sept"] = 9
_MONTH = r"(january|february|march|april|may|june|july|august|september|october|november|december|" \
    r"jan|feb|mar|apr|jun|jul|aug|sept|sep|oct|nov|dec)\.?"
_YEAR = r"((?:19|20)\d{2})"
_DAY = r"(\d{1,2})(?:st|nd|rd|th)?"
_BEFORE = r"(before|until|till|prior to|up to)"
_AFTER = r"(after|since)"
RECENT = re.compile(r"\b(latest|most recent|newest|recently|recent|current|now)\b", re.I)


@dataclass(frozen=True)
class When:
    """What a question says about time: a date range (inclusive), and/or a wish for recent news."""

    start: date | None = None
    end: date | None = None
    recent: bool = False
    phrase: str = ""

    def __bool__(self) -> bool:
        return bool(self.start or self.end or self.recent)

    def describe(self) -> str:
        """For people: "from 2005-03-01 to 2005-03-31 ("in March 2005")"."""
        if self.start and self.end:
            span = f"from {self.start} to {self.end}" if self.start != self.end else f"on {self.start}"
        elif self.start:
            span = f"from {self.start} on"
        elif self.end:
            span = f"up to {self.end}"
        else:
            return "newest first"
        return f'{span} ("{self.phrase}")' if self.phrase else span


def _month_range(year: int, month: int) -> tuple[date, date]:
    return date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1])


def _safe_day(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


def read_when(question: str, today: date | None) -> When:
    """The time a question asks about. `today` is the newest article date (None: no dates known)."""
    text = question.lower()
    recent = bool(RECENT.search(text))
    for reader in (_exact_day, _month_year, _year_only, _relative):
        found = reader(text, today)
        if found is not None:
            start, end, phrase = found
            start, end = _open_ended(text, phrase, start, end)
            return When(start, end, recent, phrase)
    return When(recent=recent)


def _open_ended(text: str, phrase: str, start: date | None, end: date | None) -> tuple[date | None, date | None]:
    """ "before March 2005" keeps only the end side; "since 2004" only the start side."""
    at = text.find(phrase)
    lead = text[max(0, at - 12) : at]
    if re.search(_BEFORE + r"\s*$", lead) and start:
        return None, start - timedelta(days=1)
    if re.search(_AFTER + r"\s*$", lead) and end:
        return (start if re.search(r"since\s*$", lead) else end + timedelta(days=1)), None
    return start, end


def _exact_day(text: str, today: date | None) -> tuple[date, date, str] | None:
    day_first = rf"\b{_DAY}\s+{_MONTH}\s*(?:,\s*)?{_YEAR}\b"  # never `\s*,?\s*`: quadratic on long blanks
    month_first = rf"\b{_MONTH}\s+{_DAY},?\s*{_YEAR}\b"
    for pattern, order in ((day_first, "dmy"), (month_first, "mdy")):
        match = re.search(pattern, text)
        if match:
            if order == "dmy":
                day, month, year = int(match[1]), MONTHS[match[2]], int(match[3])
            else:
                month, day, year = MONTHS[match[1]], int(match[2]), int(match[3])
            found = _safe_day(year, month, day)
            if found:
                return found, found, match[0]
    match = re.search(r"\b((?:19|20)\d{2})-(\d{2})-(\d{2})\b", text)
    if match:
        found = _safe_day(int(match[1]), int(match[2]), int(match[3]))
        if found:
            return found, found, match[0]
    return None


def _month_year(text: str, today: date | None) -> tuple[date, date, str] | None:
    match = re.search(rf"\b{_MONTH}\s+(?:of\s+)?{_YEAR}\b", text)
    if match:
        return (*_month_range(int(match[2]), MONTHS[match[1]]), match[0])
    return None


def _year_only(text: str, today: date | None) -> tuple[date, date, str] | None:
    match = re.search(rf"\b(?:in|during|of|since|after|before|until|from)\s+{_YEAR}\b", text)
    if match:
        year = int(match[1])
        return date(year, 1, 1), date(year, 12, 31), match[1]
    return None


def _relative(text: str, today: date | None) -> tuple[date, date, str] | None:
    if today is None:
        return None
    rules: list[tuple[str, tuple[date, date]]] = [
        (r"\btoday\b", (today, today)),
        (r"\byesterday\b", (today - timedelta(days=1), today - timedelta(days=1))),
        (r"\b(this|past|last) week\b", (today - timedelta(days=7), today)),
        (r"\b(past|last) (two|2) weeks\b", (today - timedelta(days=14), today)),
        (r"\bthis month\b", (today.replace(day=1), today)),
        (r"\blast month\b", _month_range(*_previous_month(today))),
        (r"\b(past|last) (few|several) months\b", (today - timedelta(days=120), today)),
        (r"\bthis year\b", (date(today.year, 1, 1), today)),
        (r"\blast year\b", (date(today.year - 1, 1, 1), date(today.year - 1, 12, 31))),
    ]
    for pattern, (start, end) in rules:
        match = re.search(pattern, text)
        if match:
            return start, end, match[0]
    match = re.search(rf"\b(?:in|during|since|before|after)\s+{_MONTH}\b(?!\s+(?:of\s+)?{_YEAR})", text)
    if match:
        month = MONTHS[match[1]]
        year = today.year if month <= today.month else today.year - 1  # the latest such month
        return (*_month_range(year, month), match[0].split(None, 1)[1])
    return None


def _previous_month(today: date) -> tuple[int, int]:
    return (today.year, today.month - 1) if today.month > 1 else (today.year - 1, 12)
