"""Page sizes, tag filters and the ``next`` link, as ``kong/api/endpoints.lua`` builds them.

``GET /services?size=3`` answers ``{"data":[...],"next":"/services?offset=<escaped>&size=3","offset":"<t>"}``;
the last page has ``next: null`` and no ``offset``. Top-level ``next`` links repeat ``tags`` and ``size``;
nested ones (``/services/{s}/routes``) repeat neither, exactly as Kong does. The offset token itself is
the store's business; this module only escapes it.
"""

from __future__ import annotations

import math
import re
from typing import Any
from urllib.parse import quote

from gateway.entities.errors import Code, EntityError, invalid_size

__all__ = [
    "DEFAULT_SIZE",
    "MAX_SIZE",
    "InvalidOptions",
    "collection_body",
    "escape_uri",
    "next_link",
    "page_size",
    "tag_filter",
]

DEFAULT_SIZE = 100
MAX_SIZE = 1000

_TAG_BYTES = "\\x20-\\x2B\\x2D\\x2E\\x30-\\x7E\\u0080-\\U0010FFFF"
_TAGS_AND = re.compile(f"^([{_TAG_BYTES}]+(?:,|$))+$")
_TAGS_OR = re.compile(f"^([{_TAG_BYTES}]+(?:/|$))+$")


def escape_uri(value: str) -> str:
    """``ngx.escape_uri``: everything but ``A-Za-z0-9-._~`` is percent-encoded."""
    return quote(value, safe="-_.~")


def _lua_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def page_size(args: dict[str, Any]) -> int:
    """``size`` from the query: Kong's two messages, both ``invalid size`` (code 9, HTTP 400)."""
    raw = args.get("size")
    if raw is None:
        return DEFAULT_SIZE
    if isinstance(raw, list):
        raw = raw[0] if raw else None
    number = _lua_number(raw)
    if number is None:
        raise invalid_size("size must be a number")
    if not math.isfinite(number) or number != int(number) or number < 1 or number > MAX_SIZE:
        raise invalid_size(f"size must be an integer between 1 and {MAX_SIZE}")
    return int(number)


class InvalidOptions(EntityError):
    """Kong's code 11; its details go under ``options``, not ``fields`` (``kong/db/errors.lua`` new_err_t)."""

    def __init__(self, option: str, text: str) -> None:
        super().__init__(Code.INVALID_OPTIONS, f"invalid option ({option}: {text})", None, 400)
        self.options = {option: text}

    def to_json(self) -> dict[str, Any]:
        body = super().to_json()
        body["options"] = self.options
        return body


def _invalid_option(option: str, text: str) -> EntityError:
    return InvalidOptions(option, text)


def tag_filter(args: dict[str, Any]) -> dict[str, Any] | None:
    """``?tags=a,b`` (all of) or ``?tags=a/b`` (any of) -> ``{"tags": [...], "tags_cond": "and"|"or"}``."""
    if "tags" not in args:
        return None
    tags = args["tags"]
    if isinstance(tags, list):
        tags = tags[0] if tags else None
    if not isinstance(tags, str) or tags == "":
        raise _invalid_option("tags", "cannot be null")
    if _TAGS_AND.match(tags):
        names, cond = tags.split(","), "and"
    elif _TAGS_OR.match(tags):
        names, cond = tags.split("/"), "or"
    else:
        raise _invalid_option("tags", "invalid filter syntax")
    names = [n for n in names if n]
    if len(names) > 5:
        raise _invalid_option("tags", "cannot query more than 5 tags")
    return {"tags": names, "tags_cond": cond}


def next_link(collection_path: str, offset: str | None, args: dict[str, Any] | None) -> str | None:
    """The ``next`` URL of a page; ``args`` (the query) is given for top-level collections only."""
    if offset is None:
        return None
    link = f"{collection_path}?offset={escape_uri(offset)}"
    if args is not None:
        tags = args.get("tags")
        if isinstance(tags, list):
            tags = tags[0] if tags else None
        if isinstance(tags, str):
            link += f"&tags={escape_uri(tags)}"
        size = args.get("size")
        if isinstance(size, list):
            size = size[0] if size else None
        if isinstance(size, str):
            link += f"&size={size}"
    return link


def collection_body(rows: list[dict[str, Any]], offset: str | None, link: str | None) -> dict[str, Any]:
    """``{"data": rows, "next": link}`` plus ``offset`` when there is a next page."""
    body: dict[str, Any] = {"data": rows, "next": link}
    if offset is not None:
        body["offset"] = offset
    return body
