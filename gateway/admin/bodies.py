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
   A bracket key is an index when Lua's ``tonumber`` would read it as one (``2``, ``0x2``, ``2e0``, `` 2 ``).

Hostile bodies (the socket server has already capped them at 10 MiB) end as a 400 with Kong's JSON, never as an
exception: every step after parsing (validation, JSON and YAML encoding) recurses once or more per nesting level on
a bounded Python stack, so documents are bounded to ``MAX_NESTING`` levels where they are parsed.

- JSON: more than ``MAX_NESTING`` levels (cjson's own limit is 1000), invalid UTF-8, a lone UTF-16 surrogate
  escape (cjson refuses them too), ``NaN``/``Infinity`` and numbers too large for a double (they could not be
  written back as JSON) -> ``Cannot parse JSON body``. Duplicate keys keep the last value, as cjson does.
- More than ``MAX_ARGS`` query, form or multipart arguments -> 400 ``Too many arguments`` (Kong's ``max_uri_args``
  / ``max_post_args``; Kong does not bound multipart parts, we do). A name nested more than ``MAX_NESTING``
  levels (``a[b][c]...``), or an index Lua would read as infinite or NaN (``a[inf]``) -> 400 ``Cannot parse
  arguments: ...``.
- Multipart: parts are parsed in memory (no temporary files). A body that is not a complete multipart stream
  (no boundary, a broken or truncated stream, a part with too many or too long headers) -> 400 ``Cannot parse
  multipart body``: Kong (lapis) reads it as no arguments at all, so a ``PATCH`` would answer 200 having ignored
  everything that was sent.
"""

from __future__ import annotations

import array
import itertools
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, unquote_plus

import multipart

from gateway.admin.http import Request, Response, message, nginx_error_page
from gateway.store.declarative import MAX_NESTING

__all__ = [
    "MAX_ARGS",
    "MAX_NESTING",
    "Args",
    "BodyError",
    "check_body_headers",
    "decode_args",
    "decode_json_object",
    "load_args",
    "parse_multipart",
    "parse_urlencoded",
]

MAX_ARGS = 1000
"""Kong's ``max_uri_args`` / ``max_post_args`` (``kong/api/arguments.lua``)."""

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


def _too_many() -> BodyError:
    return BodyError(message(400, "Too many arguments"))


def _bad_arguments(reason: str) -> BodyError:
    return BodyError(message(400, f"Cannot parse arguments: {reason}"))


def _shown(name: str) -> str:
    """A parameter name as quoted in an error message (hostile names can be megabytes long)."""
    return name if len(name) <= 40 else name[:40] + "..."


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
    """``ngx.req.get_post_args`` / ``get_uri_args``: repeated keys -> list, bare keys -> True.

    Raises ``BodyError`` (``Too many arguments``) beyond ``MAX_ARGS`` arguments.
    """
    flat: Flat = {}
    pieces = [piece for piece in text.split("&") if piece]
    if len(pieces) > MAX_ARGS:
        raise _too_many()
    for piece in pieces:
        name, sep, value = piece.partition("=")
        key = unquote_plus(name)
        if not key:
            continue
        _add(flat, key, unquote_plus(value) if sep else True)
    return flat


def parse_multipart(body: bytes, content_type: str) -> Flat:
    """Multipart fields as strings; file parts give their content (Kong reads ``v.content``).

    Parsed in memory (the body is already bounded). Raises ``BodyError``: ``Too many arguments`` beyond
    ``MAX_ARGS`` parts, ``Cannot parse multipart body`` for a body that is not a complete multipart stream (no
    boundary, broken or truncated). An empty body is no arguments.
    """
    if not body:
        return {}
    _, options = multipart.parse_options_header(content_type)
    flat: Flat = {}
    name: str | None = None
    data: list[bytes] = []
    try:
        boundary = options.get("boundary")
        if not boundary:
            raise multipart.ParserError("no boundary in Content-Type")
        with multipart.PushMultipartParser(
            boundary, len(body), max_segment_count=MAX_ARGS, header_charset="utf-8"
        ) as parser:
            for event in itertools.chain(parser.parse(body), parser.parse(b"")):
                if isinstance(event, multipart.MultipartSegment):
                    name, data = event.name, []
                elif event is None:
                    if name is not None:
                        _add(flat, name, b"".join(data).decode("utf-8", errors="replace"))
                    name = None
                else:
                    data.append(bytes(event))
    except multipart.MultipartError as err:
        if isinstance(err, multipart.ParserLimitReached) and "segment count" in str(err):
            raise _too_many() from None
        raise BodyError(message(400, "Cannot parse multipart body")) from None
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


_LUA_NUMBER = re.compile(
    r"\s*[-+]?(?:0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)(?:[pP][-+]?\d+)?"
    r"|(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|inf(?:inity)?|nan)\s*",
    re.IGNORECASE,
)


def _is_number(text: str) -> bool:
    """LuaJIT's ``tonumber(text) ~= nil``: decimal, hex, ``inf``/``nan``, surrounding spaces allowed."""
    return _LUA_NUMBER.fullmatch(text) is not None


def _lua_index(text: str) -> int:
    """The array index LuaJIT's ``table.insert`` makes of a numeric key (truncated to an integer).

    An infinite or NaN index has no such integer (LuaJIT would loop over 2^31 slots): refused.
    """
    stripped = text.strip()
    body = stripped.lstrip("+-")
    value = float.fromhex(stripped) if body[:2].lower() == "0x" else float(stripped)
    if not math.isfinite(value):
        raise _bad_arguments(f"invalid array index [{_shown(text)}]")
    return int(value)


def _nest(container: dict[Any, Any], path: list[str], value: Any) -> Any:
    """``nest_path``, including its habit of not descending into a slot that already exists."""
    for i, segment in enumerate(path):
        last = i == len(path) - 1
        index = _lua_index(segment) if segment != "" and _is_number(segment) else None
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
    """``decode_arg``: one flat ``name=value`` -> a nested dict holding it.

    Raises ``BodyError`` for a name that could nest more than ``MAX_NESTING`` levels (every ``.`` and ``[``
    counted, an upper bound of the nesting it produces).
    """
    if raw_name.startswith(".") or raw_name.endswith("."):
        return {raw_name: value}
    name = _ENC_BRACKETS.sub(lambda m: f"[{m.group(1)}]", raw_name)
    if name.count(".") + name.count("[") >= MAX_NESTING:
        raise _bad_arguments(f"'{_shown(name)}' is nested more than {MAX_NESTING} levels deep")
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
    """Arrays become lists in index order; everything else is copied through.

    A table that got map keys too (``a[1]=x&a[k]=y``) is what cjson encodes as an object: keys as strings.
    """
    if isinstance(value, _Array):
        if all(isinstance(k, int) for k in value):
            return [_finish(value[k]) for k in sorted(value)]
        return {str(k): _finish(v) for k, v in value.items()}
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
    return {str(k): v for k, v in finished.items()} if isinstance(finished, dict) else {}


# --------------------------------------------------------------------------------------------- loading
Coerce = Callable[[dict[str, Any]], dict[str, Any]]


def load_args(request: Request, coerce: Coerce | None = None) -> Args:
    """Kong's ``self.args``: query and body arguments, typed by ``coerce`` for form-like bodies.

    Raises ``BodyError`` for a JSON body that is not an object, and for arguments beyond the limits above.
    """
    allow_maps = request.method in NEEDS_BODY
    args = Args(uri=decode_args(parse_urlencoded(request.query), allow_maps))
    if request.method not in NEEDS_BODY:
        return args
    content_type = request.header("content-type")
    args.kind = body_kind(content_type)
    args.raw = request.body
    if content_type is not None and "application/json" in content_type.lower():
        decoded = decode_json_object(request.body)
        if decoded is None:
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


# --------------------------------------------------------------------------------------------- JSON
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_DEPTH_STEP = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def json_depth_exceeds(body: bytes, limit: int = MAX_NESTING) -> bool:
    """Whether a JSON text nests arrays/objects deeper than ``limit``, measured on the bytes before decoding.

    Strings are removed first (a UTF-8 multi-byte sequence never holds ``"`` or ``\\``, so bytes are safe), then
    the brackets are summed as +1/-1 in C (``accumulate`` over a signed byte array). A body with no more than
    ``limit`` opening brackets cannot exceed it and is not scanned.
    """
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    brackets = _JSON_STRING.sub(b"", body).translate(None, _NOT_BRACKETS)
    steps = array.array("b", brackets.translate(_DEPTH_STEP))
    return max(itertools.accumulate(steps), default=0) > limit


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number out of range: {text}")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"invalid number: {name}")


def decode_json_object(body: bytes) -> dict[str, Any] | None:
    """The JSON object in ``body``, or None for anything Kong answers ``Cannot parse JSON body`` (see the module
    docstring): not UTF-8, not an object, too deep, ``NaN``/``Infinity``/out-of-range numbers, lone surrogates."""
    if not body or json_depth_exceeds(body):
        return None
    try:
        value = json.loads(body.decode("utf-8"), parse_float=_finite, parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(value, dict):
        return None
    if _SURROGATE_ESCAPE.search(body) is not None:
        # a valid pair decodes to one character; a lone half stays and cannot be written back as UTF-8
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            return None
    return value


def unescape_segment(segment: str) -> str:
    """``ngx.unescape_uri`` on a path segment (``%2A.wildcard.test`` -> ``*.wildcard.test``)."""
    return unquote(segment)
