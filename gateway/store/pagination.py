"""Page sizes and opaque offset tokens, with Kong's errors.

Pages are in primary-key order (as Kong's postgres strategy orders them); the token is the URL-safe
base64 of the JSON list ``[last_id]``, so it survives inserts and deletes between page requests.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from gateway.entities.errors import invalid_offset, invalid_size

__all__ = ["DEFAULT_PAGE_SIZE", "MAX_PAGE_SIZE", "check_size", "decode_offset", "encode_offset"]

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000


def check_size(size: Any) -> int:
    """Kong's rules: a number, an integer, 1..1000 (``size must be an integer between 1 and 1000``)."""
    if isinstance(size, bool) or not isinstance(size, int | float):
        raise invalid_size("size must be a number")
    if float(size) != int(size) or size < 1 or size > MAX_PAGE_SIZE:
        raise invalid_size(f"size must be an integer between 1 and {MAX_PAGE_SIZE}")
    return int(size)


def encode_offset(last_id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([last_id]).encode()).decode().rstrip("=")


def decode_offset(token: str) -> str:
    """The last id of the previous page; ``invalid offset`` errors name the problem as Kong does."""
    try:
        raw = base64.b64decode(token + "=" * (-len(token) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise invalid_offset(token, "bad base64 encoding") from None
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise invalid_offset(token, "bad json encoding") from None
    if not (isinstance(value, list) and len(value) == 1 and isinstance(value[0], str)):
        raise invalid_offset(token, "bad json encoding")
    return value[0]
