"""Tests for visitor and user ids: the tracker cookie and the app's callables."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asgi_matomo.types import Scope
from asgi_matomo.visitor import (
    USER_ID_MAX_LENGTH,
    IdResult,
    TrackerCookie,
    call_user_id,
    call_visitor_id,
    parse_id_callable,
    validate_user_id,
    validate_visitor_id,
)

VISITOR_ID = "0123456789abcdef"
SCOPE: Scope = {"type": "http", "path": "/", "headers": []}


def cookie(value: str) -> list[tuple[bytes, bytes]]:
    return [(b"cookie", value.encode("latin-1"))]


# --- Tracker cookie -----------------------------------------------------------------

COOKIE_CASES = [
    # Valid cookies of site 1.
    ("Matomo 4 format", f"_pk_id.1.1fff={VISITOR_ID}.1700000000.", VISITOR_ID),
    ("piwik.js format", f"_pk_id.1.1fff={VISITOR_ID}.1600000000.3.1700000000.1690000000.",
     VISITOR_ID),
    ("id only", f"_pk_id.1.1fff={VISITOR_ID}", VISITOR_ID),
    ("among other cookies", f"a=b; _pk_ses.1.1fff=1; _pk_id.1.1fff={VISITOR_ID}.1.; z=y",
     VISITOR_ID),
    ("no spaces", f"a=b;_pk_id.1.1fff={VISITOR_ID}.1.;z=y", VISITOR_ID),
    ("tabs and spaces", f"a=b;\t _pk_id.1.1fff= {VISITOR_ID}.1. ;z=y", VISITOR_ID),
    ("quoted value", f'_pk_id.1.1fff="{VISITOR_ID}.1."', VISITOR_ID),
    ("upper-case id", f"_pk_id.1.1fff={VISITOR_ID.upper()}.1.", VISITOR_ID),
    ("other hash length", f"_pk_id.1.a1b2c3={VISITOR_ID}.1.", VISITOR_ID),
    ("upper-case hash", f"_pk_id.1.ABCD={VISITOR_ID}.1.", VISITOR_ID),
    ("first valid of several", f"_pk_id.1.aaaa=bad; _pk_id.1.bbbb={VISITOR_ID}.1.", VISITOR_ID),
    ("first of two valid", f"_pk_id.1.aaaa={VISITOR_ID}.1.; _pk_id.1.bbbb=ffffffffffffffff.1.",
     VISITOR_ID),
    # Another site's cookie is never read.
    ("site 12 for site 1", f"_pk_id.12.1fff={VISITOR_ID}.1.", None),
    ("site 11 for site 1", f"_pk_id.11.1fff={VISITOR_ID}.1.", None),
    ("no site id", f"_pk_id.1fff={VISITOR_ID}.1.", None),
    ("session cookie", f"_pk_ses.1.1fff={VISITOR_ID}", None),
    ("name with prefix", f"my_pk_id.1.1fff={VISITOR_ID}.1.", None),
    ("name without prefix", f"pk_id.1.1fff={VISITOR_ID}.1.", None),
    # Malformed cookies.
    ("empty hash", f"_pk_id.1.={VISITOR_ID}.1.", None),
    ("non-hex hash", f"_pk_id.1.zz={VISITOR_ID}.1.", None),
    ("hash with dot", f"_pk_id.1.ab.cd={VISITOR_ID}.1.", None),
    ("no equals sign", f"_pk_id.1.1fff{VISITOR_ID}", None),
    ("empty value", "_pk_id.1.1fff=", None),
    ("id too short", "_pk_id.1.1fff=0123456789abcde.1.", None),
    ("id too long", "_pk_id.1.1fff=0123456789abcdef0.1.", None),
    ("non-hex id", "_pk_id.1.1fff=0123456789abcdeg.1.", None),
    ("percent-encoded id", "_pk_id.1.1fff=%30123456789abcdef.1.", None),
    ("space inside id", "_pk_id.1.1fff=01234567 9abcdef.1.", None),
    ("unbalanced quote", f'_pk_id.1.1fff="{VISITOR_ID}.1.', None),
    ("only separators", ";;; ; =;", None),
    ("empty header", "", None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("header", "expected"),
    [case[1:] for case in COOKIE_CASES],
    ids=[case[0] for case in COOKIE_CASES],
)
def test_tracker_cookie_case(header: str, expected: str | None) -> None:
    assert TrackerCookie(1).visitor_id(cookie(header)) == expected


def test_tracker_cookie_other_site() -> None:
    reader = TrackerCookie(12)
    headers = cookie(f"_pk_id.1.1fff=ffffffffffffffff.1.; _pk_id.12.1fff={VISITOR_ID}.1.")
    assert reader.visitor_id(headers) == VISITOR_ID


def test_tracker_cookie_several_header_lines() -> None:
    # HTTP/2 clients may send each cookie in its own header line.
    headers = [
        (b"cookie", b"a=b"),
        (b"user-agent", b"_pk_id.1.1fff=ffffffffffffffff"),
        (b"cookie", f"_pk_id.1.1fff={VISITOR_ID}.1.".encode()),
    ]
    assert TrackerCookie(1).visitor_id(headers) == VISITOR_ID


def test_tracker_cookie_ignores_other_headers() -> None:
    headers = [(b"set-cookie", f"_pk_id.1.1fff={VISITOR_ID}".encode())]
    assert TrackerCookie(1).visitor_id(headers) is None
    assert TrackerCookie(1).visitor_id([]) is None


def test_tracker_cookie_non_ascii_bytes() -> None:
    headers = [(b"cookie", b"\xff\xfe=\x00; _pk_id.1.1fff=" + b"\xe9" * 16 + b".1.")]
    assert TrackerCookie(1).visitor_id(headers) is None


def test_tracker_cookie_custom_prefix() -> None:
    reader = TrackerCookie(3, name_prefix="_mtm_")
    assert reader.visitor_id(cookie(f"_mtm_id.3.abcd={VISITOR_ID}.1.")) == VISITOR_ID
    assert reader.visitor_id(cookie(f"_pk_id.3.abcd={VISITOR_ID}.1.")) is None


def test_tracker_cookie_repr() -> None:
    assert repr(TrackerCookie(7)) == "TrackerCookie(idsite=7)"


cookie_pieces = st.sampled_from(
    [b"_pk_id.1.", b"_pk_id.12.", b"1fff", b"=", b";", b" ", b'"', b".", b"0123456789abcdef",
     b"ABCDEF", b"g", b"\xff", b"\x00"]
) | st.binary(max_size=5)  # fmt: skip


@settings(max_examples=500)
@given(st.lists(st.lists(cookie_pieces, max_size=12).map(b"".join), max_size=3))
def test_tracker_cookie_random_bytes(values: list[bytes]) -> None:
    result = TrackerCookie(1).visitor_id([(b"cookie", value) for value in values])
    assert result is None or re.fullmatch(r"[0-9a-f]{16}", result)


@settings(max_examples=200)
@given(
    before=st.lists(cookie_pieces, max_size=8).map(b"".join),
    after=st.lists(cookie_pieces, max_size=8).map(b"".join),
)
def test_tracker_cookie_found_among_noise(before: bytes, after: bytes) -> None:
    # A valid cookie as its own pair is found whatever surrounds it, unless the
    # noise before it contains another valid cookie of the site.
    header = before + b"; _pk_id.1.1fff=" + VISITOR_ID.encode() + b".1.; " + after
    result = TrackerCookie(1).visitor_id([(b"cookie", header)])
    assert result is not None
    assert re.fullmatch(r"[0-9a-f]{16}", result)
    if b"_pk_id.1." not in before:
        assert result == VISITOR_ID


# --- Validation ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (VISITOR_ID, VISITOR_ID),
        ("FFFFFFFFFFFFFFFF", "ffffffffffffffff"),
        ("0123456789ABCDEF", VISITOR_ID),
        ("0123456789abcde", None),
        ("0123456789abcdef0", None),
        ("0123456789abcdeg", None),
        (" 123456789abcdef", None),
        # Full-width digits and letters are not hexadecimal digits.
        (
            "\uff10\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18\uff19"
            "\uff41\uff42\uff43\uff44\uff45\uff46",
            None,
        ),
        ("", None),
        (None, None),
        (0x0123456789ABCDEF, None),
        (VISITOR_ID.encode(), None),
    ],
)
def test_validate_visitor_id(value: object, expected: str | None) -> None:
    assert validate_visitor_id(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("alice", "alice"),
        ("alice@example.com", "alice@example.com"),
        ("Zoë Ünal", "Zoë Ünal"),
        (" padded ", " padded "),
        ("x" * USER_ID_MAX_LENGTH, "x" * USER_ID_MAX_LENGTH),
        ("x" * (USER_ID_MAX_LENGTH + 1), None),
        ("", None),
        ("   ", None),
        ("line\nbreak", None),
        ("tab\there", None),
        ("nul\x00", None),
        (None, None),
        (42, None),
        (b"alice", None),
    ],
)
def test_validate_user_id(value: object, expected: str | None) -> None:
    assert validate_user_id(value) == expected


# --- Calling the app's callables ----------------------------------------------------


def test_call_without_callable() -> None:
    assert call_visitor_id(None, SCOPE) == IdResult(None)
    assert call_user_id(None, SCOPE) == IdResult(None)


def test_call_passes_the_scope() -> None:
    seen: list[Scope] = []

    def user_id(scope: Scope) -> str:
        seen.append(scope)
        return "alice"

    assert call_user_id(user_id, SCOPE) == IdResult("alice")
    assert seen == [SCOPE]


def test_call_valid_values() -> None:
    assert call_visitor_id(lambda scope: VISITOR_ID.upper(), SCOPE) == IdResult(VISITOR_ID)
    assert call_user_id(lambda scope: "bob", SCOPE) == IdResult("bob")


def test_call_returning_none_is_not_an_error() -> None:
    assert call_visitor_id(lambda scope: None, SCOPE) == IdResult(None)
    assert call_user_id(lambda scope: None, SCOPE) == IdResult(None)


def test_call_that_raises() -> None:
    def broken(scope: Scope) -> str:
        raise KeyError("session")

    result = call_user_id(broken, SCOPE)
    assert result.value is None
    assert result.error == "the user_id callable raised KeyError"
    assert isinstance(result.exception, KeyError)

    result = call_visitor_id(broken, SCOPE)
    assert result.value is None
    assert result.error == "the visitor_id callable raised KeyError"


def test_call_base_exception_propagates() -> None:
    def interrupted(scope: Scope) -> str:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        call_user_id(interrupted, SCOPE)


VISITOR_EXPECTED = "a str of 16 hexadecimal digits"
USER_EXPECTED = f"a non-blank str of at most {USER_ID_MAX_LENGTH} printable characters"


@pytest.mark.parametrize(
    ("returned", "description"),
    [
        ("secret-visitor", "a str of length 14"),
        ("", "a str of length 0"),
        (12345, "a value of type int"),
        (b"0123456789abcdef", "a value of type bytes"),
        (["alice"], "a value of type list"),
    ],
)
def test_call_visitor_id_junk(returned: Any, description: str) -> None:
    result = call_visitor_id(lambda scope: returned, SCOPE)
    assert result.value is None
    assert result.error == (
        f"the visitor_id callable returned an invalid value ({description}); "
        f"expected {VISITOR_EXPECTED} or None"
    )
    assert result.exception is None


@pytest.mark.parametrize(
    ("returned", "description"),
    [
        ("private\nuser", "a str of length 12"),
        ("   ", "a str of length 3"),
        ("u" * 201, "a str of length 201"),
        (7, "a value of type int"),
        (True, "a value of type bool"),
    ],
)
def test_call_user_id_junk(returned: Any, description: str) -> None:
    result = call_user_id(lambda scope: returned, SCOPE)
    assert result.value is None
    assert result.error == (
        f"the user_id callable returned an invalid value ({description}); "
        f"expected {USER_EXPECTED} or None"
    )
    # The returned value may be personal data, so the message never contains it.
    if isinstance(returned, str) and returned.strip():
        assert returned not in result.error


def test_call_async_function_is_closed() -> None:
    async def user_id(scope: Scope) -> str:
        return "alice"

    # Passed around parse_id_callable on purpose. The coroutine must be closed,
    # or Python warns that it was never awaited (an error under this test suite).
    result = call_user_id(user_id, SCOPE)  # type: ignore[arg-type]
    assert result == IdResult(
        None, "the user_id callable returned a coroutine, but it must be synchronous"
    )


# --- parse_id_callable ----------------------------------------------------------------


def test_parse_id_callable_accepts_callables() -> None:
    def function(scope: Scope) -> str | None:
        return None

    class Reader:
        def __call__(self, scope: Scope) -> str | None:
            return None

    reader = Reader()
    assert parse_id_callable(None, "visitor_id") is None
    assert parse_id_callable(function, "visitor_id") is function
    assert parse_id_callable(reader, "user_id") is reader


@pytest.mark.parametrize("value", ["alice", 5, VISITOR_ID])
def test_parse_id_callable_rejects_non_callables(value: object) -> None:
    expected = (
        f"user_id must be a callable taking the ASGI scope and returning a str or None, "
        f"got {value!r}"
    )
    with pytest.raises(TypeError, match=f"^{re.escape(expected)}$"):
        parse_id_callable(value, "user_id")


def test_parse_id_callable_rejects_async_function() -> None:
    async def visitor_id(scope: Scope) -> str:
        return VISITOR_ID

    expected = (
        f"visitor_id must be a synchronous callable, got the async function {visitor_id!r}; "
        "read what you need from the scope without awaiting"
    )
    with pytest.raises(TypeError, match=f"^{re.escape(expected)}$"):
        parse_id_callable(visitor_id, "visitor_id")


def test_parse_id_callable_rejects_async_call_method() -> None:
    class Reader:
        async def __call__(self, scope: Scope) -> str:
            return "alice"

    with pytest.raises(TypeError, match=r"^user_id must be a synchronous callable"):
        parse_id_callable(Reader(), "user_id")
