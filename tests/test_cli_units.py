"""Tests for lamina.cli.units: docker/go-units sizes and durations (go-units' own test vectors)."""

from __future__ import annotations

import pytest

from lamina.cli.units import ago, bytes_size, human_duration, human_size, parse_size
from lamina.errors import InvalidArgument

# ----------------------------------------------------------------------------------------------
# docker/go-units


@pytest.mark.parametrize(
    "size,want",
    [  # go-units TestHumanSize (precision 4)
        (1000, "1kB"),
        (1024, "1.024kB"),
        (1000000, "1MB"),
        (1048576, "1.049MB"),
        (2 * 1000**2, "2MB"),
        (3.42 * 1000**3, "3.42GB"),
        (5.372 * 1000**4, "5.372TB"),
        (2.22 * 1000**5, "2.22PB"),
        (10000000000000 * 1000**5, "1e+04YB"),
    ],
)
def test_human_size_go_units_vectors(size, want):
    assert human_size(size, 4) == want


@pytest.mark.parametrize(
    "size,want",
    [  # precision 3, as `docker images` prints SIZE
        (0, "0B"),
        (1, "1B"),
        (512, "512B"),
        (999, "999B"),
        (1000, "1kB"),
        (1234, "1.23kB"),
        (4860000, "4.86MB"),
        (4_261_376, "4.26MB"),
        (999_499, "999kB"),
        (999_500, "1e+03kB"),  # %.3g rounds up to 1e+03 without changing unit, as Docker does
        (123_456_789, "123MB"),
        (10**9, "1GB"),
    ],
)
def test_human_size_docker_images_precision(size, want):
    assert human_size(size) == want


@pytest.mark.parametrize(
    "size,want",
    [  # go-units TestBytesSize
        (0, "0B"),
        (1024, "1KiB"),
        (1024 * 1024, "1MiB"),
        (2 * 1024**2, "2MiB"),
        (3.42 * 1024**3, "3.42GiB"),
        (5.372 * 1024**4, "5.372TiB"),
        (2.22 * 1024**5, "2.22PiB"),
        (1024**5 * 1024**5, "1.049e+06YiB"),
        (1536, "1.5KiB"),
    ],
)
def test_bytes_size(size, want):
    assert bytes_size(size) == want


MIN, HOUR, DAY = 60, 3600, 86400
WEEK, MONTH, YEAR = 7 * DAY, 30 * DAY, 365 * DAY


@pytest.mark.parametrize(
    "seconds,want",
    [  # go-units TestHumanDuration, every case
        (0.45, "Less than a second"),
        (1, "1 second"),
        (45, "45 seconds"),
        (46, "46 seconds"),
        (59, "59 seconds"),
        (60, "About a minute"),
        (3 * MIN, "3 minutes"),
        (35 * MIN, "35 minutes"),
        (35 * MIN + 40, "35 minutes"),
        (45 * MIN, "45 minutes"),
        (45 * MIN + 40, "45 minutes"),
        (46 * MIN, "46 minutes"),
        (59 * MIN, "59 minutes"),
        (1 * HOUR, "About an hour"),
        (1 * HOUR + 29 * MIN, "About an hour"),
        (1 * HOUR + 31 * MIN, "2 hours"),
        (1 * HOUR + 59 * MIN, "2 hours"),
        (3 * HOUR, "3 hours"),
        (3 * HOUR + 29 * MIN, "3 hours"),
        (3 * HOUR + 31 * MIN, "4 hours"),
        (3 * HOUR + 59 * MIN, "4 hours"),
        (3 * HOUR + 60 * MIN, "4 hours"),
        (24 * HOUR, "24 hours"),
        (1 * DAY + 12 * HOUR, "36 hours"),
        (2 * DAY, "2 days"),
        (7 * DAY, "7 days"),
        (13 * DAY + 5 * HOUR, "13 days"),
        (2 * WEEK, "2 weeks"),
        (2 * WEEK + 4 * DAY, "2 weeks"),
        (3 * WEEK, "3 weeks"),
        (4 * WEEK, "4 weeks"),
        (4 * WEEK + 3 * DAY, "4 weeks"),
        (1 * MONTH, "4 weeks"),
        (1 * MONTH + 2 * WEEK, "6 weeks"),
        (2 * MONTH, "2 months"),
        (2 * MONTH + 2 * WEEK, "2 months"),
        (3 * MONTH, "3 months"),
        (3 * MONTH + 1 * WEEK, "3 months"),
        (5 * MONTH + 2 * WEEK, "5 months"),
        (13 * MONTH, "13 months"),
        (23 * MONTH, "23 months"),
        (24 * MONTH, "24 months"),
        (24 * MONTH + 2 * WEEK, "2 years"),
        (3 * YEAR + 2 * MONTH, "3 years"),
        # thresholds: days/weeks/months divide the rounded hours, years the truncated hours
        (0.999, "Less than a second"),
        (-5, "Less than a second"),
        (119.9, "About a minute"),
        (120, "2 minutes"),
        (47 * HOUR + 29 * MIN, "47 hours"),
        (47 * HOUR + 31 * MIN, "2 days"),  # rounds to 48 hours
        (2 * WEEK - 31 * MIN, "13 days"),
        (2 * WEEK - 29 * MIN, "2 weeks"),
        (2 * MONTH - 1, "2 months"),
        (2 * YEAR - HOUR, "24 months"),
        (2 * YEAR - 1, "1 years"),  # go-units quirk, kept: Docker prints this too
        (2 * YEAR, "2 years"),
    ],
)
def test_human_duration(seconds, want):
    assert human_duration(seconds) == want


def test_ago():
    assert ago(1_000_000, 1_000_000 + 2 * WEEK) == "2 weeks ago"
    assert ago(100, 100.5) == "Less than a second ago"
    assert ago(0).endswith(" years ago")  # defaults to now


@pytest.mark.parametrize(
    "text,binary,want",
    [  # go-units TestRAMInBytes / TestFromHumanSize
        ("32", True, 32),
        ("32b", True, 32),
        ("32B", True, 32),
        ("32k", True, 32 * 1024),
        ("32K", True, 32 * 1024),
        ("32kb", True, 32 * 1024),
        ("32Kib", True, 32 * 1024),
        ("32KIB", True, 32 * 1024),
        ("32Mb", True, 32 * 1024**2),
        ("32Gb", True, 32 * 1024**3),
        ("32Tb", True, 32 * 1024**4),
        ("32PB", True, 32 * 1024**5),
        ("32P", True, 32 * 1024**5),
        ("32.3", True, 32),
        ("32.3 mb", True, int(32.3 * 1024**2)),
        ("0.3MB", True, int(0.3 * 1024**2)),
        ("64m", True, 67108864),
        ("512m", True, 536870912),
        ("0", False, 0),
        ("0 B", False, 0),
        ("32k", False, 32000),
        ("32.5kB", False, 32500),
        ("32.5 kB", False, 32500),
        ("32.5 B", False, 32),
        ("0.3 K", False, 300),
        (".3kB", False, 300),
        ("0.", False, 0),
        ("0. ", False, 0),
        ("-0 B", False, 0),
        ("32. b", False, 32),
        ("0 ", False, 0),
        ("1e3", True, 1000),  # Go float syntax
    ],
)
def test_parse_size(text, binary, want):
    assert parse_size(text, binary=binary) == want


@pytest.mark.parametrize(
    "text,detail",
    [
        ("", ""),
        ("hello", ""),
        (".", ": strconv.ParseFloat: parsing \".\": invalid syntax"),
        (" 0", ': strconv.ParseFloat: parsing " 0": invalid syntax'),
        ("0b ", ': strconv.ParseFloat: parsing "0b": invalid syntax'),
        ("-32", ""),
        ("-32 B", ""),
        ("32b.", ': strconv.ParseFloat: parsing "32b.": invalid syntax'),
        ("32 bb", ": invalid suffix: 'bb'"),
        ("32  b", ': strconv.ParseFloat: parsing "32 ": invalid syntax'),
        ("32m b", ': strconv.ParseFloat: parsing "32m": invalid syntax'),
        ("32bm", ": invalid suffix: 'bm'"),
        ("32kiB!", ": invalid suffix: 'kiB!'"),
        ("32x", ": invalid suffix: 'x'"),
        ("32mi", ": invalid suffix: 'mi'"),
        ("1_000", ': strconv.ParseFloat: parsing "1_000": invalid syntax'),
    ],
)
def test_parse_size_errors_name_the_text(text, detail):
    with pytest.raises(InvalidArgument) as info:
        parse_size(text)
    assert str(info.value) == "invalid size: '%s'%s" % (text, detail)
