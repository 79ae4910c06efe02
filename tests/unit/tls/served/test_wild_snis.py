"""``produce_wild_snis``: Kong's ``spec/01-unit/24-runloop_certificate_spec.lua`` (reference case 94) and edges."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.tls.served.sni_names import produce_wild_snis


@pytest.mark.parametrize(
    ("sni", "expected"),
    [
        # Kong's unit spec
        ("domain.test", (None, "domain.*")),
        ("www.domain.test", ("*.domain.test", "www.domain.*")),
        ("foo.www.domain.test", ("*.www.domain.test", "foo.www.domain.*")),
        ("*.domain.test", ("*.domain.test", None)),
        ("domain.*", (None, "domain.*")),
        # edges of the same regular expressions
        ("*", ("*", "*")),
        ("localhost", (None, None)),
        ("", (None, None)),
        ("a.b.c", ("*.b.c", "a.b.*")),
        ("a.exam*le.com", (None, None)),  # a '*' inside: no wildcard candidates at all
        ("*.exam*le.com", ("*.exam*le.com", None)),
        ("a.example.com:600", ("*.example.com:600", "a.example.*")),
        ("127.0.0.1", ("*.0.0.1", "127.0.0.*")),
        ("Test.Wildcard.COM", ("*.Wildcard.COM", "Test.Wildcard.*")),  # no case folding
        ("a.b.c d.e", ("*.b.c d.e", "a.b.c d.*")),  # \S stops at whitespace, the rest is kept
    ],
)
def test_wildcard_candidates(sni: str, expected: tuple[str | None, str | None]) -> None:
    assert produce_wild_snis(sni) == expected


@pytest.mark.parametrize("value", [None, 1, b"domain.test", ["a"]])
def test_non_string_raises_like_kong(value: Any) -> None:
    with pytest.raises(TypeError, match=r"^sni must be a string$"):
        produce_wild_snis(value)
