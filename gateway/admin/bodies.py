"""Request bodies and query strings, read the way Kong's Admin API reads them.

Sources: ``kong/api/api_helpers.lua`` (``before_filter``, ``parse_params``), ``kong/api/arguments.lua``
(``load``) and ``kong/api/arguments_decoder.lua`` (dotted and bracket keys). The rules, in order:

1. Only ``POST``, ``PUT`` and ``PATCH`` bodies are looked at. Two ``Content-Type`` headers -> 400 with the
   raw text ``Multiple Content-Type headers not allowed``. No ``Content-Type`` is fine when the body is empty.
   A type other than ``application/json``, ``multipart/form-data``, ``application/x-www-form-urlencoded``
   (and YAML on ``/config``) -> 415, answered with nginx's error page because Kong exits without a body.
2. JSON must decode to an object, else 400 ``{"message":"Cannot parse JSON body"}`` (an empty body too).
   JSON is taken as is: it is the only way to write ``null``.
3. Form and multipart fields are flat ``name -> string`` pairs (a repeated name gives a list; a query key
   without ``=`` is ``true``, as ``ngx.req.get_uri_args`` gives). Names are then nested:
   ``a.b=1`` -> ``{"a": {"b": "1"}}``, ``a[]=x`` appends, ``a[2]=x`` inserts at the 1-based index 2,
   ``a[k]=x`` is a map key (only for POST/PUT/PATCH). Multipart file parts (``-F cert=@ca.crt``) are
   plain string values. Typing (``"80"`` -> ``80``) is the entity layer's job (``coerce_form``).
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, unquote_plus

import multipart

from gateway.admin.http import Request, Response, message, nginx_error_page

__all__ = [
    "Args",
    "BodyError",
    "check_body_headers",
    "decode_args",
    "load_args",
    "parse_multipart",
    "parse_urlencoded",
]

NEEDS_BODY = frozenset({"POST", "PUT", "PATCH"})

JSON = "json"
FORM = "form"
MULTIPART = "multipart"
YAML = "yaml"
OTHER = "other"
NONE = "none"


class BodyError(Exception):
    """The body cannot be used; ``response`` is Kong's answer for it."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


@dataclass(slots=True)
class Args:
    """``self.args`` of Kong: decoded query arguments, decoded body arguments and the raw body."""

    uri: dict[str, Any] = field(default_factory=dict)
    post: dict[str, Any] = field(default_factory=dict)
    kind: str = NONE
    raw: bytes = b""
    json_body: Any = None

    @property
    def is_form(self) -> bool:
        """Form-like bodies carry strings only and need schema typing."""
        return self.kind in (FORM, MULTIPART)


# --------------------------------------------------------------------------------------------- checks
def check_body_headers(request: Request, accepts_yaml: bool = False) -> Response | None:
    """``api_helpers.before_filter``: the 400/415 answers decided from headers alone, or None."""
    if request.method not in NEEDS_BODY:
        return None
    types = request.header_values("content-type")
    if not types:
        length = request.header("content-length")
        if length == "0" or not request.body:
            return None
        return nginx_error_page(415)
    if len(types) > 1:
        # Kong exits with a string body, sent raw under the location's default type.
        return Response(400, b"Multiple Content-Type headers not allowed", [("Content-Type", "application/json")])
    content_type = types[0]
    if (
        content_type.startswith("application/json")
        or content_type.startswith("multipart/form-data")
        or content_type.startswith("application/x-www-form-urlencoded")
        or (accepts_yaml and (content_type.startswith("application/yaml") or content_type.startswith("text/yaml")))
    ):
        return None
    return nginx_error_page(415)


def body_kind(content_type: str | None) -> str:
    """Which parser ``arguments.load`` picks for a Content-Type (prefix match, case-insensitive)."""
    if content_type is None:
        return NONE
    lower = content_type.lower()
    if lower.startswith("application/x-www-form-urlencoded"):
        return FORM
    if lower.startswith("application/json"):
        return JSON
    if lower.startswith("multipart/form-data"):
        return MULTIPART
    if lower.startswith("application/yaml") or lower.startswith("text/yaml"):
        return YAML
    return OTHER


# --------------------------------------------------------------------------------------------- flat parsing
Flat = dict[str, Any]


def _add(flat: Flat, key: str, value: Any) -> None:
    if key in flat:
        existing = flat[key]
        if isinstance(existing, list):
            existing.append(value)
        else:
            flat[key] = [existing, value]
    else:
        flat[key] = value


def parse_urlencoded(text: str) -> Flat:
    """``ngx.req.get_post_args`` / ``get_uri_args``: repeated keys -> list, bare keys -> True."""
    flat: Flat = {}
    for piece in text.split("&"):
        if not piece:
            continue
        name, sep, value = piece.partition("=")
        key = unquote_plus(name)
        if not key:
            continue
        _add(flat, key, unquote_plus(value) if sep else True)
    return flat


def parse_multipart(body: bytes, content_type: str) -> Flat:
    """Multipart fields as strings; file parts give their content (Kong reads ``v.content``)."""
    _, options = multipart.parse_options_header(content_type)
    boundary = options.get("boundary")
    if not boundary or not body:
        return {}
    flat: Flat = {}
    try:
        parser = multipart.MultipartParser(io.BytesIO(body), boundary, len(body), charset="utf-8")
        for part in parser:
            if part.name is None:
                continue
            raw: bytes = part.raw
            _add(flat, part.name, raw.decode("utf-8", errors="replace"))
    except multipart.MultipartError:
        # resty.upload gives up on a broken stream and Kong logs it at notice: the arguments are empty.
        return flat
    return flat


# --------------------------------------------------------------------------------------------- nesting
_KEY_SPLIT = re.compile(r"(?:[^.](?:\[[^\]]*\])*)+")
_KEY_PARTS = re.compile(r"\.([^\[.]+)|\[([^\]]*)\]")
_ENC_BRACKETS = re.compile(r"%5B(.*?)%5D", re.IGNORECASE)


class _Array(dict[int, Any]):
    """A Lua table used as an array while decoding; turned into a list once every key is in."""


def _lua_insert(container: _Array, index: int, value: Any) -> None:
    """``table.insert(t, index, v)``: shifts later items up when the slot is taken."""
    if index in container:
        for position in sorted((k for k in container if k >= index), reverse=True):
            container[position + 1] = container[position]
    container[index] = value


def _path_of(name: str, allow_maps: bool) -> list[str] | None:
    """``get_param_name_and_keys``: ``a[b][1].c`` -> ``["a", "b", "1", "c"]``; None when not nested."""
    delimiter = next((i for i in range(1, len(name)) if name[i] in "[."), None)
    if delimiter is None:
        return None
    keys: list[str] = []
    is_map = False
    for match in _KEY_PARTS.finditer(name, delimiter):
        if match.group(1) is not None:
            keys.append(match.group(1))
        else:
            key = match.group(2)
            if key != "" and not _is_number(key):
                is_map = True
            keys.append(key)
    if not keys or (is_map and not allow_maps):
        return None
    return [name[:delimiter], *keys]


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _nest(container: dict[Any, Any], path: list[str], value: Any) -> Any:
    """``nest_path``, including its habit of not descending into a slot that already exists."""
    for i, segment in enumerate(path):
        last = i == len(path) - 1
        index = int(float(segment)) if segment != "" and _is_number(segment) else None
        if segment == "" or index is not None:
            array = container if isinstance(container, _Array) else None
            if last:
                if array is None:
                    container[segment] = value
                    return value
                if index is not None:
                    _lua_insert(array, index, value)
                    return value
                if isinstance(value, list):
                    for j, item in enumerate(value, start=1):
                        _lua_insert(array, j, item)
                    return array
                array[len(array) + 1] = value
                return array
            position = index if index is not None else 1
            if position not in container:
                child: dict[Any, Any] = _Array() if _next_is_array(path, i) else {}
                container[position] = child
                container = child
        else:
            if last:
                container[segment] = value
                return value
            if segment not in container:
                child = _Array() if _next_is_array(path, i) else {}
                container[segment] = child
                container = child
    return None


def _next_is_array(path: list[str], i: int) -> bool:
    following = path[i + 1]
    return following == "" or _is_number(following)


def _decode_one(raw_name: str, value: Any, allow_maps: bool) -> dict[Any, Any]:
    """``decode_arg``: one flat ``name=value`` -> a nested dict holding it."""
    if raw_name.startswith(".") or raw_name.endswith("."):
        return {raw_name: value}
    name = _ENC_BRACKETS.sub(lambda m: f"[{m.group(1)}]", raw_name)
    names = _KEY_SPLIT.findall(name)
    if not names:
        return {name: value}
    root: dict[Any, Any] = {}
    bucket: Any = root
    for i, part in enumerate(names):
        if i == len(names) - 1:
            _decode_complex(part, value, bucket, allow_maps)
        else:
            bucket = _decode_complex(part, {}, bucket, allow_maps)
    return root


def _decode_complex(name: str, value: Any, container: dict[Any, Any], allow_maps: bool) -> Any:
    """``decode_complex_arg``: nest ``name`` into ``container``, or store it as a plain key."""
    path = _path_of(name, allow_maps)
    if path is not None:
        nested = _nest(container, path, value)
        if nested is not None:
            return nested
    container[name] = value
    return value


def _combine(into: dict[Any, Any], arg: Any) -> None:
    """``combine_arg``: merge one decoded argument into the result; scalars meeting scalars make lists."""
    if not isinstance(arg, dict):
        array = into if isinstance(into, _Array) else None
        if array is not None:
            array[len(array) + 1] = arg
        return
    for key, value in arg.items():
        if key not in into:
            into[key] = value
            continue
        current = into[key]
        if isinstance(current, dict):
            _combine(current, value)
        else:
            merged = _Array({1: current})
            into[key] = merged
            _combine(merged, value)


def _finish(value: Any) -> Any:
    """Arrays become lists in index order; everything else is copied through."""
    if isinstance(value, _Array):
        return [_finish(value[k]) for k in sorted(value)]
    if isinstance(value, dict):
        return {k: _finish(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finish(v) for v in value]
    return value


def decode_args(flat: Flat, allow_maps: bool = True) -> dict[str, Any]:
    """``arguments.decode`` without typing: nest dotted/bracket names and merge them."""
    result: dict[Any, Any] = {}
    for name, value in flat.items():
        _combine(result, _decode_one(name, value, allow_maps))
    finished = _finish(result)
    return {str(k): v for k, v in finished.items()}


# --------------------------------------------------------------------------------------------- loading
Coerce = Callable[[dict[str, Any]], dict[str, Any]]


def load_args(request: Request, coerce: Coerce | None = None) -> Args:
    """Kong's ``self.args``: query and body arguments, typed by ``coerce`` for form-like bodies.

    Raises ``BodyError`` for a JSON body that is not an object.
    """
    allow_maps = request.method in NEEDS_BODY
    args = Args(uri=decode_args(parse_urlencoded(request.query), allow_maps))
    if request.method not in NEEDS_BODY:
        return args
    content_type = request.header("content-type")
    args.kind = body_kind(content_type)
    args.raw = request.body
    if content_type is not None and "application/json" in content_type.lower():
        try:
            decoded = json.loads(request.body.decode("utf-8")) if request.body else None
        except (UnicodeDecodeError, ValueError):
            decoded = None
        if not isinstance(decoded, dict):
            raise BodyError(message(400, "Cannot parse JSON body"))
        args.post = decoded
        args.json_body = decoded
        args.kind = JSON
        return args
    if args.kind == FORM:
        flat = parse_urlencoded(request.body.decode("utf-8", errors="replace"))
    elif args.kind == MULTIPART and content_type is not None:
        flat = parse_multipart(request.body, content_type)
    else:
        return args
    post = decode_args(flat, allow_maps)
    args.post = coerce(post) if coerce is not None else post
    return args


def unescape_segment(segment: str) -> str:
    """``ngx.unescape_uri`` on a path segment (``%2A.wildcard.test`` -> ``*.wildcard.test``)."""
    return unquote(segment)
