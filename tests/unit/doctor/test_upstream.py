"""``gateway doctor upstream``'s pure parts: the target and the fixes by code."""

from __future__ import annotations

import pytest

from gateway.doctor.upstream import FIXES, parse_target
from gateway.tls.engine.verify_codes import VerifyCode


@pytest.mark.parametrize(
    ("text", "expected"),
    [("api.internal:8443", ("api.internal", 8443)), ("127.0.0.1:1", ("127.0.0.1", 1)), ("[::1]:443", ("::1", 443))],
)
def test_targets(text: str, expected: tuple[str, int]) -> None:
    assert parse_target(text) == expected


@pytest.mark.parametrize("text", ["api.internal", ":443", "host:0", "host:65536", "host:https"])
def test_bad_targets(text: str) -> None:
    with pytest.raises(ValueError, match="is not HOST:PORT"):
        parse_target(text)


def test_every_code_the_docs_name_has_a_fix_with_its_fields() -> None:
    for code in (18, 19, 20, 21, 22, 10, 9, 2):
        fix = FIXES[VerifyCode(code)]
        text = fix.format(trust="T", top="TOP", issuer="ISS", depth=1, needed=2)
        assert "{" not in text
