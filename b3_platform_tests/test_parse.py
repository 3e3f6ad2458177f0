"""The parse rules of `b3_platform.b3.parse`: locale numbers and dates, type codes, the reductor
repair and language detection. Values are the ones B3 writes (demo_data/B3_API.md §3-§5)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from b3_platform.b3.parse import (
    ParseError,
    Reductor,
    TypeCode,
    detect_language,
    parse_date,
    parse_decimal,
    parse_int,
    parse_reductor,
    split_type,
)

# ---------------------------------------------------------------------------------------------
# Numbers and dates, per locale


@pytest.mark.parametrize(
    ("text", "locale", "expected"),
    [
        ("0,452", "pt-br", Decimal("0.452")),
        ("10,874", "pt-br", Decimal("10.874")),
        ("100,000", "pt-br", Decimal("100.000")),
        ("15.438.607,05630450", "pt-br", Decimal("15438607.05630450")),
        ("2.663", "en-us", Decimal("2.663")),
        ("16,036,751.16744128", "en-us", Decimal("16036751.16744128")),
        ("100.000", "en-us", Decimal("100.000")),
        (" 0,452 ", "pt-br", Decimal("0.452")),  # surrounding blanks are not part of the value
    ],
)
def test_parse_decimal(text, locale, expected):
    value = parse_decimal(text, locale, field="part")
    assert value == expected
    # Exactly the digits B3 wrote: no float round trip, the scale is kept.
    assert str(value) == str(expected)


@pytest.mark.parametrize(
    ("text", "locale", "expected"),
    [
        ("476.976.044", "pt-br", 476976044),
        ("91.922.324.640", "pt-br", 91922324640),
        ("844", "pt-br", 844),
        ("99,015,750,716", "en-us", 99015750716),
        ("476,976,044", "en-us", 476976044),
    ],
)
def test_parse_int(text, locale, expected):
    value = parse_int(text, locale, field="theoricalQty")
    assert value == expected
    assert type(value) is int


@pytest.mark.parametrize(
    ("text", "locale", "expected"),
    [
        ("08/07/25", "pt-br", dt.date(2025, 7, 8)),
        ("10/07/25", "pt-br", dt.date(2025, 7, 10)),
        ("26/03/2021", "pt-br", dt.date(2021, 3, 26)),
        ("04/07/25", "en-us", dt.date(2025, 4, 7)),  # MM/DD/YY: 7 April 2025
        ("12/31/24", "en-us", dt.date(2024, 12, 31)),
    ],
)
def test_parse_date(text, locale, expected):
    assert parse_date(text, locale, field="header.date") == expected


def test_same_text_means_different_values_in_the_two_locales():
    # "2.663" is 2.663 % in en-us but 2663 in pt-br.
    assert parse_decimal("2.663", "en-us", field="part") == Decimal("2.663")
    assert parse_int("2.663", "pt-br", field="theoricalQty") == 2663
    assert parse_decimal("2.663", "pt-br", field="part") == Decimal("2663")
    # "04/07/25" is 7 April in en-us and 4 July in pt-br.
    assert parse_date("04/07/25", "en-us") == dt.date(2025, 4, 7)
    assert parse_date("04/07/25", "pt-br") == dt.date(2025, 7, 4)
    # "10,874" is 10.874 % in pt-br but ten thousand in en-us.
    assert parse_decimal("10,874", "pt-br", field="part") == Decimal("10.874")
    assert parse_decimal("10,874", "en-us", field="part") == Decimal("10874")
    # US thousands are not pt-br numbers at all.
    with pytest.raises(ParseError):
        parse_int("99,015,750,716", "pt-br", field="theoricalQty")
    with pytest.raises(ParseError):
        parse_decimal("16,036,751.16744128", "pt-br", field="reductor")
    with pytest.raises(ParseError):
        parse_int("476.976.044", "en-us", field="theoricalQty")


@pytest.mark.parametrize("text", ["0,452", "0,1", "0,045", "15.438.607,05630450"])
def test_pt_br_decimals_are_errors_in_en_us(text):
    """A pt-br weight read as en-us must not silently become a thousands-grouped integer."""
    with pytest.raises(ParseError) as err:
        parse_decimal(text, "en-us", field="part")
    assert err.value.field == "part" and err.value.value == text


@pytest.mark.parametrize("text", ["0.452", "0.100"])
def test_en_us_decimals_are_errors_as_pt_br_integers(text):
    with pytest.raises(ParseError):
        parse_int(text, "pt-br", field="theoricalQty")


@pytest.mark.parametrize(
    ("func", "text", "locale"),
    [
        (parse_decimal, "1,2,3", "pt-br"),
        (parse_decimal, "1,2,3", "en-us"),
        (parse_decimal, "abc", "pt-br"),
        (parse_decimal, "", "pt-br"),
        (parse_decimal, "   ", "en-us"),
        (parse_decimal, None, "pt-br"),
        (parse_decimal, 0.452, "pt-br"),  # a JSON number, not B3's string
        (parse_decimal, "1.23.456", "pt-br"),
        (parse_decimal, "1,23,456", "en-us"),
        (parse_decimal, "10,874,", "pt-br"),
        (parse_decimal, "1 000,5", "pt-br"),
        (parse_int, "1.23.456", "pt-br"),
        (parse_int, "1,2,3", "en-us"),
        (parse_int, "abc", "pt-br"),
        (parse_int, "", "en-us"),
        (parse_int, None, "en-us"),
        (parse_int, "4x6.976.044", "pt-br"),
        (parse_int, "476.976,044", "pt-br"),  # has decimals: not an integer
        (parse_int, "476976044.", "pt-br"),
        (parse_int, 476976044, "pt-br"),
    ],
)
def test_number_errors_name_field_and_value(func, text, locale):
    with pytest.raises(ParseError) as err:
        func(text, locale, field="theoricalQty")
    assert err.value.field == "theoricalQty"
    assert err.value.value == text
    message = str(err.value)
    assert "'theoricalQty'" in message and repr(text) in message


@pytest.mark.parametrize(
    ("text", "locale"),
    [
        ("32/01/25", "pt-br"),
        ("01/13/25", "pt-br"),  # month 13
        ("13/01/25", "en-us"),  # month 13 in MM/DD/YY
        ("29/02/25", "pt-br"),  # not a leap year
        ("2025-07-10", "pt-br"),
        ("8/7/25", "pt-br"),
        ("08/07/025", "pt-br"),
        ("", "pt-br"),
        (None, "en-us"),
        ("abc", "en-us"),
    ],
)
def test_date_errors_name_field_and_value(text, locale):
    with pytest.raises(ParseError) as err:
        parse_date(text, locale, field="header.date")
    assert err.value.field == "header.date" and err.value.value == text
    assert "'header.date'" in str(err.value) and repr(text) in str(err.value)


def test_date_error_mentions_the_expected_form():
    with pytest.raises(ParseError, match="DD/MM/YY"):
        parse_date("2025-07-10", "pt-br")
    with pytest.raises(ParseError, match="MM/DD/YY"):
        parse_date("2025-07-10", "en-us")


def test_unknown_locale_is_refused():
    with pytest.raises(ValueError, match="unknown locale"):
        parse_decimal("0,452", "pt-pt", field="part")  # type: ignore[arg-type]


def test_parse_error_at_keeps_field_value_and_adds_location():
    with pytest.raises(ParseError) as err:
        parse_int("abc", "pt-br", field="theoricalQty")
    located = err.value.at("IBOV 2025-07-10 row 12 (PETR4)")
    assert isinstance(located, ParseError)
    assert (located.field, located.value, located.reason) == (err.value.field, "abc", err.value.reason)
    assert str(located).startswith("IBOV 2025-07-10 row 12 (PETR4): field 'theoricalQty' = 'abc'")


# ---------------------------------------------------------------------------------------------
# The reductor

REDUCTOR_2021 = "18.296.80337677573"  # footer of demo_data/csv/IBOVDia_26-03-21.csv, as stored


def test_reductor_regular_values_have_no_note():
    assert parse_reductor("15.438.607,05630450", "pt-br") == Reductor(Decimal("15438607.05630450"))
    assert parse_reductor("16,036,751.16744128", "en-us") == Reductor(Decimal("16036751.16744128"))
    assert parse_reductor("565.131.573,48994190", "pt-br").note is None


def test_reductor_2021_missing_decimal_comma_is_repaired_with_a_note():
    reductor = parse_reductor(REDUCTOR_2021, "pt-br")
    assert reductor.value == Decimal("18296803.37677573")
    assert str(reductor.value) == "18296803.37677573"
    assert reductor.note
    assert REDUCTOR_2021 in reductor.note


def test_reductor_2021_text_is_in_the_demo_csv():
    from b3_platform_tests.replay import sample_bytes

    last_line = sample_bytes("csv/IBOVDia_26-03-21.csv").rstrip().splitlines()[-1]
    assert last_line.decode("iso-8859-1") == f"Redutor;;;{REDUCTOR_2021}"


@pytest.mark.parametrize(
    "text",
    [
        "18.296.8033767757",  # 3 + 7 digits: not the known defect
        "18.296.803376775730",  # 3 + 9 digits
        "18.296.80337677573x",
        "18296.80337677573",  # badly grouped
        "15.438.607,0563045,0",
        "abc",
        "",
        None,
    ],
)
def test_reductor_other_malformed_values_still_raise(text):
    with pytest.raises(ParseError) as err:
        parse_reductor(text, "pt-br")
    assert err.value.field == "reductor" and err.value.value == text


def test_reductor_repair_never_applies_in_en_us():
    with pytest.raises(ParseError) as err:
        parse_reductor(REDUCTOR_2021, "en-us", field="header.reductor")
    assert err.value.field == "header.reductor"
    assert err.value.value == REDUCTOR_2021


# ---------------------------------------------------------------------------------------------
# Language detection


@pytest.mark.parametrize(
    ("text", "text_reductor", "expected"),
    [
        ("Quantidade Teórica Total", "Redutor", "pt-br"),
        ("Quantidade Te\ufffdrica Total", "Redutor", "pt-br"),  # rb3's 2022 cassette
        ("Total Theorethical Quantity", "Reductor", "en-us"),  # sic, as B3 writes it
        ("Total Theoretical Quantity", "Reductor", "en-us"),
        ("Quantidade Teórica Total", None, "pt-br"),
        (None, "Reductor", "en-us"),
        ("  quantidade teórica total ", "REDUTOR", "pt-br"),
    ],
)
def test_detect_language(text, text_reductor, expected):
    assert detect_language(text, text_reductor) == expected


@pytest.mark.parametrize(
    ("text", "text_reductor"),
    [
        ("Theoretical Amount", "Divisor"),
        (None, None),
        ("", ""),
        ("Quantidade Teórica Total", "Reductor"),  # the two labels disagree
    ],
)
def test_detect_language_unknown_raises(text, text_reductor):
    with pytest.raises(ParseError) as err:
        detect_language(text, text_reductor)
    assert err.value.field == "header.text"
    assert "pt-br or en-us" in str(err.value)


# ---------------------------------------------------------------------------------------------
# The `type` specification code

#: Every `type` value in the samples (demo_data/B3_API.md §4), exactly as written, plus two more seen
#: in public code (findata-br docs, mercados' comment).
ALL_TYPES = [
    "ON",
    "ON      N1",
    "ON      N2",
    "ON      NM",
    "ON  ATZ",
    "ON  ATZ NM",
    "ON  EB  N1",
    "ON  EBG NM",
    "ON  ED",
    "ON  ED  N1",
    "ON  ED  NM",
    "ON  EDJ",
    "ON  EDJ N2",
    "ON  EDJ NM",
    "ON  EDR N1",
    "ON  EDR NM",
    "ON  EJ",
    "ON  EJ  N1",
    "ON  EJ  N2",
    "ON  EJ  NM",
    "ON  EJS NM",
    "ON  ES  NM",
    "ON  EX  NM",
    "PN",
    "PN      N1",
    "PN      N2",
    "PN      NM",
    "PN  EB  N1",
    "PN  ED  N1",
    "PN  ED  N2",
    "PN  EDJ N2",
    "PN  EJ  N1",
    "PN  EJ  N2",
    "PNA     N1",
    "PNA ATZ N1",
    "PNA ED  N1",
    "PNB",
    "PNB     N1",
    "PNB     N2",
    "PNB ED  N1",
    "PNB EDR N1",
    "PNB EJ  N2",
    "PNC     N1",
    "UNT",
    "UNT     N1",
    "UNT     N2",
    "UNT EB  N2",
    "UNT ED  N2",
    "UNT EDJ",
    "UNT EJ  N2",
    "UNT EX  N2",
]
EXTRA_TYPES = ["PN  ERJ N2", "CI  ER"]


def test_type_list_is_the_documented_51():
    assert len(ALL_TYPES) == 51
    assert len(set(ALL_TYPES)) == 51


@pytest.mark.parametrize("code", ALL_TYPES + EXTRA_TYPES)
def test_split_type_fixed_width(code):
    parts = split_type(code)
    assert parts.unrecognised is None
    padded = code.ljust(10)
    assert parts.share_class == padded[0:3].strip()
    assert parts.event_flag == (padded[4:7].strip() or None)
    assert parts.listing_segment == (padded[8:10].strip() or None)
    # Nothing is lost: the three parts rebuild the code.
    rebuilt = f"{parts.share_class:<3} {parts.event_flag or '':<3} {parts.listing_segment or ''}".rstrip()
    assert rebuilt == code


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("PNA ATZ N1", TypeCode("PNA", "ATZ", "N1")),
        ("ON      NM", TypeCode("ON", None, "NM")),
        ("UNT EDJ", TypeCode("UNT", "EDJ", None)),
        ("ON", TypeCode("ON", None, None)),
        ("ON  EJ  N2", TypeCode("ON", "EJ", "N2")),
        ("PN  ERJ N2", TypeCode("PN", "ERJ", "N2")),
        ("CI  ER", TypeCode("CI", "ER", None)),
        ("ON      NM   ", TypeCode("ON", None, "NM")),  # trailing blanks are trimmed
    ],
)
def test_split_type_examples(code, expected):
    assert split_type(code) == expected


#: Codes of real B3 portfolios of every kind (IBBR, BDRX, IFIX, IFIL, IEEX, …), exactly as written,
#: and what they split into. BDR classes carry a digit (DR1-DR3); a single letter in a BDR's flag
#: slot is the class of the underlying share (GOGL34 `DRN A`, GOGL35 `DRN C`) and belongs to the
#: share class; fund quotas are `CI`.
REAL_TYPES = {
    "DRN": TypeCode("DRN", None, None),
    "DR1": TypeCode("DR1", None, None),
    "DR2": TypeCode("DR2", None, None),
    "DR3": TypeCode("DR3", None, None),
    "DRN A": TypeCode("DRN A", None, None),
    "DRN C": TypeCode("DRN C", None, None),
    "DR3 EDB": TypeCode("DR3", "EDB", None),
    "DRN EJ": TypeCode("DRN", "EJ", None),
    "CI": TypeCode("CI", None, None),
    "CI  EB": TypeCode("CI", "EB", None),
    "CI  ER": TypeCode("CI", "ER", None),
    "CI  ERS": TypeCode("CI", "ERS", None),
    "CI  ES": TypeCode("CI", "ES", None),
    "PNA": TypeCode("PNA", None, None),
    "ON  EDB NM": TypeCode("ON", "EDB", "NM"),
    "ON  EJB N2": TypeCode("ON", "EJB", "N2"),
    "ON  EG  NM": TypeCode("ON", "EG", "NM"),
    "ON  ER  NM": TypeCode("ON", "ER", "NM"),
    "PN  EB  N1": TypeCode("PN", "EB", "N1"),
    "UNT EJS N2": TypeCode("UNT", "EJS", "N2"),
    "ON  ES  NM": TypeCode("ON", "ES", "NM"),
    "PNB EDJ N1": TypeCode("PNB", "EDJ", "N1"),
    "UNT EX  N2": TypeCode("UNT", "EX", "N2"),
    "PNA ATZ N1": TypeCode("PNA", "ATZ", "N1"),
    "ON  ATZ": TypeCode("ON", "ATZ", None),
    "ON      MA": TypeCode("ON", None, "MA"),
}


@pytest.mark.parametrize(("code", "expected"), REAL_TYPES.items(), ids=list(REAL_TYPES))
def test_split_type_real_codes_of_every_kind(code, expected):
    parts = split_type(code)
    assert parts == expected
    assert parts.unrecognised is None


@pytest.mark.parametrize(
    ("code", "share_class", "event_flag", "listing_segment", "why"),
    [
        ("", "", None, None, "fixed-width layout"),
        ("   ", "", None, None, "fixed-width layout"),
        ("ONXX    NM", "ONXX    NM", None, None, "fixed-width layout"),  # no blank after the class
        ("ON  EDJNM", "ON  EDJNM", None, None, "fixed-width layout"),  # no blank after the flag
        ("ON  EDJ NM1", "ON  EDJ NM1", None, None, "fixed-width layout"),  # longer than 10
        ("    ED  NM", "ED  NM", None, None, "fixed-width layout"),  # no share class
        ("O", "O", None, None, "unknown share class 'O'"),
        ("XYZ EDJ NM", "XYZ", "EDJ", "NM", "unknown share class 'XYZ'"),
        ("on      nm", "on", None, "nm", "unknown share class 'on'"),
        ("ON  E1  NM", "ON", "E1", "NM", "unknown event flag 'E1'"),
        ("ON  A   NM", "ON", "A", "NM", "unknown event flag 'A'"),  # a class letter only on BDRs
        ("ON  ED  N-", "ON", "ED", "N-", "unknown listing segment 'N-'"),
        ("DR4", "DR4", None, None, "unknown share class 'DR4'"),
    ],
)
def test_split_type_unknown_codes_are_kept_and_say_why(code, share_class, event_flag, listing_segment, why):
    """Descriptive, not a gate: never an error for a string; split as far as the layout allows."""
    parts = split_type(code)
    assert (parts.share_class, parts.event_flag, parts.listing_segment) == (
        share_class,
        event_flag,
        listing_segment,
    )
    assert parts.unrecognised and why in parts.unrecognised


@pytest.mark.parametrize("code", [None, 10, b"ON"])
def test_split_type_non_string_is_an_error(code):
    with pytest.raises(ParseError) as err:
        split_type(code, field="type")
    assert err.value.field == "type" and err.value.value == code


# ---------------------------------------------------------------------------------------------
# Tiny and huge numbers of real portfolios


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("36,84861823", Decimal("36.84861823")),  # IEEX
        ("2.437.340.002,15461000", Decimal("2437340002.15461000")),  # IBBR
    ],
)
def test_reductors_of_small_and_large_indices_fit_the_declared_type(text, expected):
    import pyarrow as pa

    from b3_platform.lake.schemas import SILVER_HEADER

    reductor = parse_reductor(text, "pt-br", field="header.reductor")
    assert reductor == Reductor(expected)
    declared = SILVER_HEADER.schema.field("reductor").type
    assert pa.array([reductor.value], type=declared).to_pylist() == [expected]


def test_small_quantities_parse():
    assert parse_int("4.500", "pt-br", field="theoricalQty") == 4500  # IEEX
    assert parse_int("4,500", "en-us", field="theoricalQty") == 4500
