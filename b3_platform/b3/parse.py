"""Every rule for reading B3's strings, in one place.

B3 writes every number and date as a locale-formatted string: pt-br `"0,452"`, `"476.976.044"`,
`"08/07/25"` (DD/MM/YY); en-us `"2.663"`, `"99,015,750,716"`, `"04/07/25"` (MM/DD/YY). The same
text means different numbers in the two locales, so every rule takes the locale explicitly and is
strict: anything that does not match is an error naming the field and the value, never a guess.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

Locale = Literal["pt-br", "en-us"]
LOCALES: tuple[Locale, ...] = ("pt-br", "en-us")


class ParseError(ValueError):
    """A B3 value that does not follow the rules; names the field, the value and where it came from."""

    def __init__(self, field: str, value: object, reason: str, *, where: str = "") -> None:
        self.field, self.value, self.reason, self.where = field, value, reason, where
        super().__init__(self._message())

    def _message(self) -> str:
        prefix = f"{self.where}: " if self.where else ""
        return f"{prefix}field {self.field!r} = {self.value!r}: {self.reason}"

    def at(self, where: str) -> "ParseError":
        """The same error, located (e.g. "IBOV 2025-07-10 row 12 (PETR4)")."""
        return ParseError(self.field, self.value, self.reason, where=where)


# Thousands separator / decimal separator per locale.
_SEPARATORS: dict[str, tuple[str, str]] = {"pt-br": (".", ","), "en-us": (",", ".")}


def _number_pattern(locale: Locale, *, decimals: bool) -> re.Pattern[str]:
    thousands, decimal = (re.escape(s) for s in _SEPARATORS[locale])
    # A grouped number never starts with 0: en-us "0,452" is a pt-br decimal, not 452.
    integer = rf"(?:[1-9]\d{{0,2}}(?:{thousands}\d{{3}})+|\d+)"
    fraction = rf"(?:{decimal}\d+)?" if decimals else ""
    return re.compile(rf"^-?{integer}{fraction}$")


_PATTERNS = {(loc, dec): _number_pattern(loc, decimals=dec) for loc in LOCALES for dec in (True, False)}


def ascii_number_pattern(locale: Locale, *, decimals: bool) -> str:
    """The number rule as RE2 text for pyarrow.compute (the columnar typing in transforms.silver).

    The same grammar as the rule above with ASCII digits only, so it is stricter: Python's `\\d`
    also takes other scripts' digits. Every text it accepts, the Python rule accepts and reads
    as the same number; a text it refuses goes to the Python rule, which types or names it."""
    return _number_pattern(_require_locale(locale), decimals=decimals).pattern.replace(r"\d", "[0-9]")


def number_separators(locale: Locale) -> tuple[str, str]:
    """(thousands, decimal) separators of a locale: pt-br (".", ","), en-us (",", ".")."""
    return _SEPARATORS[_require_locale(locale)]


def _require_locale(locale: str) -> Locale:
    if locale not in _SEPARATORS:
        raise ValueError(f"unknown locale {locale!r}; expected one of {LOCALES}")
    return locale  # type: ignore[return-value]


def _clean(value: object, field: str) -> str:
    if value is None:
        raise ParseError(field, value, "is missing (null)")
    if not isinstance(value, str):
        raise ParseError(field, value, f"expected a string, got {type(value).__name__}")
    text = value.strip()
    if not text:
        raise ParseError(field, value, "is empty")
    return text


def parse_decimal(value: object, locale: Locale, *, field: str) -> Decimal:
    """A locale-formatted decimal, e.g. pt-br "10,874" or en-us "10.874" → Decimal("10.874")."""
    text = _clean(value, field)
    if not _PATTERNS[(_require_locale(locale), True)].match(text):
        raise ParseError(field, value, f"is not a {locale} decimal number")
    thousands, decimal = _SEPARATORS[locale]
    return Decimal(text.replace(thousands, "").replace(decimal, "."))


def parse_int(value: object, locale: Locale, *, field: str) -> int:
    """A locale-formatted integer, e.g. pt-br "476.976.044" or en-us "476,976,044"."""
    text = _clean(value, field)
    if not _PATTERNS[(_require_locale(locale), False)].match(text):
        raise ParseError(field, value, f"is not a {locale} integer")
    return int(text.replace(_SEPARATORS[locale][0], ""))


#: B3 reductors carry exactly 8 decimals. One 2021 CSV download writes `18.296.80337677573`: the
#: decimal comma is missing, and the last dot group holds 3 integer digits + the 8 decimals.
_REDUCTOR_NO_COMMA = re.compile(r"^(\d{1,3}(?:\.\d{3})*)\.(\d{3})(\d{8})$")


@dataclass(frozen=True)
class Reductor:
    value: Decimal
    #: Set when the text needed the documented repair; kept in silver so nobody mistakes it.
    note: str | None = None


def parse_reductor(value: object, locale: Locale, *, field: str = "reductor") -> Reductor:
    """The index reductor (divisor). Repairs exactly one known defect: a pt-br value whose decimal
    comma is missing (`18.296.80337677573` → 18296803.37677573), recognisable because the last
    group has 3 + 8 digits. Any other malformed value is an error."""
    text = _clean(value, field)
    try:
        return Reductor(parse_decimal(text, locale, field=field))
    except ParseError:
        match = _REDUCTOR_NO_COMMA.match(text) if locale == "pt-br" else None
        if not match:
            raise
    repaired = f"{match.group(1)}.{match.group(2)},{match.group(3)}"
    return Reductor(
        parse_decimal(repaired, locale, field=field),
        note=f"decimal comma missing in {text!r}; read as {repaired!r} (B3 reductors have 8 decimals)",
    )


_DATE = re.compile(r"^(\d{2})/(\d{2})/(\d{2}|\d{4})$")


def parse_date(value: object, locale: Locale, *, field: str = "date") -> dt.date:
    """B3's short dates: pt-br DD/MM/YY, en-us MM/DD/YY (a 4-digit year is accepted too)."""
    text = _clean(value, field)
    match = _DATE.match(text)
    if not match:
        raise ParseError(field, value, f"is not a {locale} date (expected {_date_form(locale)})")
    first, second, year = match.groups()
    day, month = (first, second) if _require_locale(locale) == "pt-br" else (second, first)
    full_year = int(year) + 2000 if len(year) == 2 else int(year)
    try:
        return dt.date(full_year, int(month), int(day))
    except ValueError as exc:
        raise ParseError(field, value, f"is not a valid {locale} date ({exc})") from None


def _date_form(locale: Locale) -> str:
    return "DD/MM/YY" if locale == "pt-br" else "MM/DD/YY"


# Header texts by which a response tells its language (it does not say it otherwise).
_LANGUAGE_MARKERS: dict[str, Locale] = {
    "quantidade": "pt-br",
    "redutor": "pt-br",
    "total theorethical": "en-us",  # sic, as B3 writes it
    "total theoretical": "en-us",
    "reductor": "en-us",
}


def detect_language(header_text: str | None, text_reductor: str | None) -> Locale:
    """Which locale a GetPortfolioDay response was requested in, from its header labels."""
    seen = {
        locale
        for label in (header_text, text_reductor)
        if label
        for marker, locale in _LANGUAGE_MARKERS.items()
        if label.strip().lower().startswith(marker)
    }
    if len(seen) != 1:
        raise ParseError("header.text", header_text, "cannot tell whether the response is pt-br or en-us")
    return seen.pop()


@dataclass(frozen=True)
class TypeCode:
    """B3's `type` specification code split into its three fixed-width parts.

    `unrecognised` says why no rule recognises the code (None when one does). Such a code is still
    split as far as the layout allows, never refused: the verbatim code stays in `type_code`."""

    share_class: str
    event_flag: str | None
    listing_segment: str | None
    unrecognised: str | None = None


#: Share classes: ON, PN, PNA…PNH, UNT, fund quotas (CI) and BDR classes (DRN, DR1, DR2, DR3, DRE).
_SHARE_CLASS = re.compile(r"^(?:ON|PN[A-H]?|UNT|CI|DR[N123E])$")
#: BDR classes, whose flag slot may hold the class of the underlying share (`DRN A`: GOGL34).
_BDR_CLASS = re.compile(r"^DR[N123E]$")
_BDR_LETTER = re.compile(r"^[A-Z]$")
#: Event flags: `E` (ex-) and one or two events — D dividend, J interest on equity, B bonus shares,
#: S subscription, G reverse split, R income (funds), X ex- otherwise — (ED, EDJ, EJS, ERS, EX, …),
#: or ATZ.
_EVENT_FLAG = re.compile(r"^(?:E[BDGJRSX]{1,2}|ATZ)$")
#: Listing segments: Novo Mercado, Nível 1 and 2, Bovespa Mais (and its Nível 2), organised OTC.
_LISTING_SEGMENT = re.compile(r"^(?:NM|N1|N2|MA|M2|MB)$")


def split_type(value: object, *, field: str = "type") -> TypeCode:
    """`"PNA ATZ N1"` → (PNA, ATZ, N1); `"ON      NM"` → (ON, None, NM); `"UNT EDJ"` → (UNT, EDJ, None);
    `"DR2"` → (DR2, None, None); `"DRN A"` → (DRN A, None, None); `"CI  ERS"` → (CI, ERS, None).

    The code is fixed width 10 with trailing blanks trimmed: [0:3] share class, [4:7] event flag,
    [8:10] listing segment, separated by blanks. The flag changes around ex-dates: never a key.
    A BDR's flag slot may hold a single letter, the class of the underlying share (GOGL34 `DRN A`,
    GOGL35 `DRN C`): it is part of the share class (`DRN A`), not an event flag.

    Descriptive, not a gate: a code no rule recognises is split as far as the layout allows (or kept
    whole as the share class when the layout does not hold) and `unrecognised` says why. Only a
    value that is not a string at all is an error."""
    if not isinstance(value, str):
        raise ParseError(field, value, "expected a string")
    text = value.rstrip()
    layout = 0 < len(text) <= 10 and text[3:4] in ("", " ") and text[7:8] in ("", " ")
    share_class, flag, segment = text[0:3].strip(), text[4:7].strip(), text[8:10].strip()
    if not layout or not share_class:
        return TypeCode(text.strip(), None, None, unrecognised="not in the fixed-width layout 'CCC FFF SS'")
    if _BDR_CLASS.match(share_class) and _BDR_LETTER.match(flag):
        share_class, flag = f"{share_class} {flag}", ""
    elif not _SHARE_CLASS.match(share_class):
        return TypeCode(share_class, flag or None, segment or None, f"unknown share class {share_class!r}")
    if flag and not _EVENT_FLAG.match(flag):
        return TypeCode(share_class, flag, segment or None, f"unknown event flag {flag!r}")
    if segment and not _LISTING_SEGMENT.match(segment):
        return TypeCode(share_class, flag or None, segment, f"unknown listing segment {segment!r}")
    return TypeCode(share_class, flag or None, segment or None)
