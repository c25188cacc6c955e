"""The shared wire error table: statuses from the distribution spec, envelopes that parse back."""

import json

import pytest

from lamina.registry import errcodes


@pytest.mark.parametrize("code,status", [
    ("BLOB_UNKNOWN", 404), ("BLOB_UPLOAD_INVALID", 400), ("BLOB_UPLOAD_UNKNOWN", 404),
    ("DIGEST_INVALID", 400), ("MANIFEST_BLOB_UNKNOWN", 404), ("MANIFEST_INVALID", 400),
    ("MANIFEST_UNKNOWN", 404), ("NAME_INVALID", 400), ("NAME_UNKNOWN", 404),
    ("SIZE_INVALID", 400), ("UNAUTHORIZED", 401), ("DENIED", 403), ("UNSUPPORTED", 405),
    ("TOOMANYREQUESTS", 429), ("RANGE_INVALID", 416), ("UNKNOWN", 500),
])
def test_status_of_each_spec_code(code, status):
    assert errcodes.CODES[code].status == status
    st, body = errcodes.envelope(code)
    assert st == status
    doc = json.loads(body)
    assert doc == {"errors": [{"code": code, "message": errcodes.CODES[code].message}]}


def test_envelope_round_trip_with_detail():
    _, body = errcodes.envelope("DIGEST_INVALID", message="digest mismatch", detail={"d": "sha256:x"})
    assert errcodes.parse(body) == [errcodes.WireError("DIGEST_INVALID", "digest mismatch", {"d": "sha256:x"})]


@pytest.mark.parametrize("body", [None, b"", b"<html>502</html>", b"{", b"[]", b'{"errors": 3}',
                                  b"[" * 100000, b'{"errors": [{"message": "no code"}]}'])
def test_parse_never_raises(body):
    assert errcodes.parse(body) == []


def test_unknown_code_is_classed_unknown():
    assert errcodes.by_code("NO_SUCH_CODE").status == 500
    assert errcodes.by_code("DENIED").status == 403
