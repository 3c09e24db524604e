"""Encoding hits as the JSON objects of a bulk request, and joining them into a body."""

from __future__ import annotations

import json
import json.encoder
import sys
import tracemalloc

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from asgi_matomo.encoding import bulk_body, decode_entry, make_hit_encoder
from asgi_matomo.types import Hit

HITS: list[Hit] = [
    {"idsite": 1, "rec": 1, "url": "https://app.example/items/1"},
    {"idsite": 1, "action_name": 'caf\u00e9 "quoted" \\ \n\t\x01', "pf_srv": -3, "e_v": 10**30},
    {"ua": "\U0001f600 \u2028", 5: "int key"},  # type: ignore[dict-item]
    {},
]


# The values of a hit: str and int. Text without lone surrogates, which
# UTF-8 cannot carry, and ints on both sides of orjson's 64-bit limit.
VALUES = st.one_of(
    st.text(st.characters(exclude_categories=["Cs"])),
    st.integers(min_value=-(2**70), max_value=2**70),
)


def documented(hit: Hit) -> bytes:
    return json.dumps(hit, separators=(",", ":"), ensure_ascii=False).encode()


@pytest.fixture(params=["orjson", "stdlib"])
def encoder_kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test with orjson installed, and again as if it were not."""
    if request.param == "stdlib":
        # None in sys.modules makes `import orjson` raise ImportError.
        monkeypatch.setitem(sys.modules, "orjson", None)
    return str(request.param)


@pytest.mark.parametrize("hit", HITS)
def test_encoding_matches_compact_json(hit: Hit, encoder_kind: str) -> None:
    assert make_hit_encoder()(hit) == documented(hit)


@pytest.mark.parametrize("hit", HITS)
def test_encoding_without_c_encoder(hit: Hit, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "orjson", None)
    monkeypatch.setattr(json.encoder, "c_make_encoder", None)
    assert make_hit_encoder()(hit) == documented(hit)


def test_encoder_falls_back_when_c_encoder_differs(monkeypatch: pytest.MonkeyPatch) -> None:
    def make_wrong_encoder(*arguments: object) -> object:
        return lambda hit, level: ["{}"]

    monkeypatch.setitem(sys.modules, "orjson", None)
    monkeypatch.setattr(json.encoder, "c_make_encoder", make_wrong_encoder)
    assert make_hit_encoder()(HITS[0]) == documented(HITS[0])


def test_orjson_is_used_when_installed() -> None:
    hit: Hit = {"idsite": 1, "url": "https://app.example/"}
    encode = make_hit_encoder()
    assert encode(hit) == orjson.dumps(hit)
    assert "orjson" in encode.__qualname__


def test_encoded_hits_take_their_own_size(encoder_kind: str) -> None:
    # The queue's byte cap counts len(entry), so an entry must not keep a
    # larger buffer alive.
    hit: Hit = {"idsite": 1, "url": "https://app.example/" + "a" * 400}
    encode = make_hit_encoder()
    size = len(encode(hit))
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        entries = [encode(hit) for _ in range(1000)]
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()

    assert len(entries) == 1000
    assert grown / 1000 < size + 100


def test_orjson_skipped_when_bytes_differ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(orjson, "dumps", lambda value: b"{}")
    assert make_hit_encoder()(HITS[0]) == documented(HITS[0])


@given(st.dictionaries(st.text(), VALUES, max_size=6))
def test_both_encoders_write_the_same_bytes(hit: Hit) -> None:
    # Function-scoped fixtures do not work with @given, so orjson is hidden
    # here while the fallback encoder is built.
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(sys.modules, "orjson", None)
        encode_stdlib = make_hit_encoder()
    encoded = make_hit_encoder()(hit)

    assert encoded == encode_stdlib(hit)
    assert encoded == documented(hit)


def test_lone_surrogate_becomes_question_mark(encoder_kind: str) -> None:
    encoded = make_hit_encoder()({"url": "https://app.example/\udcff"})
    assert encoded == b'{"url":"https://app.example/?"}'


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (b"bytes", TypeError),
        (float("nan"), ValueError),
        (object(), TypeError),
    ],
)
def test_values_json_cannot_hold_raise(
    value: object, error: type[Exception], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A hit contains only str and int values. orjson would write NaN as
    # null, so this checks the standard library's errors.
    monkeypatch.setitem(sys.modules, "orjson", None)
    encode = make_hit_encoder()
    with pytest.raises(error):
        encode({"idsite": 1, "dimension1": value})  # type: ignore[dict-item]


@pytest.mark.parametrize("count", [1, 2, 5])
def test_bulk_body_joins_entries(count: int) -> None:
    encode = make_hit_encoder()
    hits: list[Hit] = [
        {"idsite": 1, "url": f"https://app.example/{number}"} for number in range(count)
    ]
    entries = [encode(hit) for hit in hits]

    body = bulk_body(entries, b'{"requests":[', b'],"token_auth":"t"}')

    assert json.loads(body) == {"requests": hits, "token_auth": "t"}
    assert len(body) == sum(map(len, entries)) + count - 1 + len(
        '{"requests":[],"token_auth":"t"}'
    )
    assert len(entries) == count  # the entries themselves are left alone


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        (b'{"idsite":1,"url":"x"}', {"idsite": 1, "url": "x"}),
        (b"[1, 2]", {}),
        (b"not json", {}),
        (b'{"a":"\xc3\xa9"}', {"a": "\u00e9"}),
    ],
)
def test_decode_entry(entry: bytes, expected: dict[str, object]) -> None:
    assert decode_entry(entry) == expected
