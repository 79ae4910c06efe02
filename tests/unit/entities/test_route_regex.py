"""Route regexes: what RE2 runs, what it refuses and with which message, and the route schema's use of it."""

from __future__ import annotations

import time

import pytest

from gateway.entities import SCHEMAS, route_regex, typedefs
from gateway.entities.errors import DeclarativeConfigError
from gateway.entities.route_regex import Refusal, RegexError
from gateway.store import declarative

ROUTES = SCHEMAS["routes"]


def _refusal(path: str) -> RegexError:
    with pytest.raises(RegexError) as info:
        route_regex.compile_path(path)
    return info.value


@pytest.mark.parametrize(
    ("path", "request_path", "expected"),
    [
        # anchored at the start, as the router always matched; every alternative too
        (r"~/items/\d+", "/items/42/x", ("/items/42", None)),
        (r"~/items/\d+", "/v1/items/42", None),
        (r"~/a|/b", "/x/b", None),
        (r"~/a|/b", "/b/c", ("/b", None)),
        (r"~/exact$", "/exact/", None),
        (r"~/Case", "/case", None),  # case-sensitive
        (r"~/(?i)case", "/CASE", ("/CASE", None)),
        # PCRE and Python spellings of named groups; numbered groups; groups that did not take part are absent
        (r"~/items/(?<id>\d+)", "/items/7", ("/items/7", {"1": "7", "id": "7", "0": "/items/7"})),
        (r"~/items/(?P<id>\d+)", "/items/7", ("/items/7", {"1": "7", "id": "7", "0": "/items/7"})),
        (r"~/(a)(x)?/(b)", "/a/b", ("/a/b", {"1": "a", "3": "b", "0": "/a/b"})),
        # RE2 reads PCRE's \z, \pL, POSIX classes, \x{...} and \Q...\E
        (r"~/a\z", "/a", ("/a", None)),
        (r"~/\pL+/[[:digit:]]+", "/été/12", ("/été/12", None)),
        (r"~/\x{263a}", "/\u263a", ("/\u263a", None)),
        (r"~/\Q(a)\E", "/(a)", ("/(a)", None)),
    ],
)
def test_path_regexes_match_as_the_router_uses_them(
    path: str, request_path: str, expected: tuple[str, dict[str, str] | None] | None
) -> None:
    assert typedefs.validate_router_path(path) is None
    assert route_regex.first_refusal([path], None) is None
    assert route_regex.compile_path(path).match(request_path) == expected


def test_header_regexes_are_lowercased_and_searched_anywhere() -> None:
    regex = route_regex.compile_header(r"~*Windows|Linux")
    assert regex.search("mozilla (linux; x11)")
    assert not regex.search("mozilla (macintosh)")
    assert not regex.search("mozilla (Linux)")  # the router lowercases the value, as Kong does


@pytest.mark.parametrize(
    ("path", "feature", "construct"),
    [
        (r"~/(a)\1", "back-references", r"\1"),
        (r"~/(?<n>a)\k<n>", "back-references", r"\k<n>"),
        (r"~/(?P<n>a)(?P=n)", "back-references", "(?P=n)"),
        (r"~/(a)\g{1}", "back-references", r"\g{1}"),
        (r"~/a(?=b)", "look-ahead assertions", "(?="),
        (r"~/a(?!b)", "look-ahead assertions", "(?!"),
        (r"~/(?<=a)b", "look-behind assertions", "(?<="),
        (r"~/(?<!a)b", "look-behind assertions", "(?<!"),
        (r"~/(?>a+)b", "atomic groups", "(?>"),
        (r"~/a++b", "possessive quantifiers", "++"),
        (r"~/a{2,}+b", "possessive quantifiers", "{2,}+"),
        (r"~/\(?+b", "possessive quantifiers", "?+"),  # \( is a literal, ?+ still possessive
        (r"~/(a|(?R))", "recursion and subroutine calls", "(?R)"),
        (r"~/(a)(?1)", "recursion and subroutine calls", "(?1)"),
        (r"~/(?<n>a)(?&n)", "recursion and subroutine calls", "(?&n)"),
        (r"~/a\Kb", "match start resets", r"\K"),
        (r"~/(?'id'a)", "quoted group names", "(?'id'"),
        (r"~/(?|(a)|(b))", "branch-reset groups", "(?|"),
        (r"~/(?C1)a", "callouts", "(?C1)"),
        (r"~/(?#note)a", "comment groups", "(?#"),
        (r"~/(*UTF8)a", "PCRE verbs", "(*UTF8"),
        (r"~/a\Z", "the \\Z and \\G anchors", r"\Z"),
        (r"~/a\hb", "PCRE-only escapes", r"\h"),
        (r"~/(?x) a", "PCRE-only flags", "(?x)"),
    ],
)
def test_constructs_that_need_backtracking_are_refused_by_name(path: str, feature: str, construct: str) -> None:
    err = _refusal(path)
    assert err.kind is Refusal.UNSUPPORTED
    assert str(err) == f"regex '{path[1:]}' cannot run in linear time: {feature} are not supported (at '{construct}')"
    # valid PCRE: the path field accepts it, the route's entity check refuses it (Kong 3.x's ATC validation)
    assert typedefs.validate_router_path(path) is None
    assert ROUTES.validate({"protocols": ["http"], "paths": [path]}, full_check=False) == {
        "@entity": [f"Router Expression failed validation: {err}"]
    }


def test_escapes_classes_and_quotes_are_not_mistaken_for_constructs() -> None:
    # a back-reference after look-alikes that are literals: the escaped paren, the class, the quoted text
    for path in (r"~/\(?=x\1", r"~/[(?=]x\1", r"~/\Q(?=\Ex\1"):
        err = _refusal(path)
        assert (err.kind, err.reason) == (Refusal.UNSUPPORTED, r"back-references are not supported (at '\1')")
    for path in (r"~/\(?=x", r"~/[(?=]", r"~/\Q(?=\E", r"~/[\]\\1]"):
        assert route_regex.first_refusal([path], None) is None


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        (r"~/(a", "missing ): /(a"),
        (r"~/a)", "unexpected ): /a)"),
        (r"~/[a", "missing ]: [a"),
        (r"~/a**", "bad repetition operator: **"),
        (r"~/\i", r"invalid escape sequence: \i"),
        (r"~/[z-a]", "invalid character class range: z-a"),
        (r"~/a{1001}", "invalid repetition size: {1001}"),  # RE2's bound; PCRE's is 65535
    ],
)
def test_malformed_regexes_are_field_errors(path: str, reason: str) -> None:
    err = _refusal(path)
    assert (err.kind, err.reason) == (Refusal.SYNTAX, reason)
    message = f"invalid regex: '{path[1:]}' (PCRE returned: {reason})"
    assert typedefs.validate_router_path(path) == message
    # the field error wins: the entity check does not run on an invalid field, as in Kong
    assert ROUTES.validate({"protocols": ["http"], "paths": ["/ok", path]}, full_check=False) == {
        "paths": [None, message]
    }


def test_header_regexes_are_checked_by_the_entity_check() -> None:
    def errors(values: list[str]) -> dict[str, object]:
        return ROUTES.validate({"protocols": ["http"], "headers": {"x-v": values}}, full_check=False)

    assert errors(["plain(", "~*^v[0-9]+$"]) == {}  # a plain value is not a regex
    assert errors(["~*v(?=1)"]) == {
        "@entity": [
            "Router Expression failed validation: regex 'v(?=1)' cannot run in linear time: "
            "look-ahead assertions are not supported (at '(?=')"
        ]
    }
    assert errors(["~*v("]) == {"@entity": ["Router Expression failed validation: invalid regex 'v(': missing ): v("]}


def test_paths_are_reported_before_headers_and_first_refusal_wins() -> None:
    err = route_regex.first_refusal([r"~/ok", r"~/(a)\1", r"~/(?=b)"], {"x": ["~*(?!c)"]})
    assert err is not None and err.regex == r"/(a)\1"
    err = route_regex.first_refusal(["/plain"], {"x": ["v", "~*(?!c)"]})
    assert err is not None and err.regex == "(?!c)"


def test_matching_time_is_linear_in_the_path() -> None:
    # Python's re needs seconds for 27 'a's here (2**27 ways to split them between the two loops)
    regex = route_regex.compile_path("~/r/(a+)+$")
    start = time.perf_counter()
    for n in (27, 28, 29, 30, 5000, 100_000):
        assert regex.match("/r/" + "a" * n + "!") is None
    assert regex.match("/r/aaa") == ("/r/aaa", {"1": "aaa", "0": "/r/aaa"})
    assert time.perf_counter() - start < 1.0


def test_declarative_config_refuses_the_route_by_its_path() -> None:
    cfg = {
        "_format_version": "3.0",
        "services": [{"name": "s", "url": "http://a.test", "routes": [{"name": "r", "paths": [r"~/(a)\1"]}]}],
    }
    with pytest.raises(DeclarativeConfigError) as info:
        declarative.load(cfg)
    message = (
        r"Router Expression failed validation: regex '/(a)\1' cannot run in linear time: "
        r"back-references are not supported (at '\1')"
    )
    assert info.value.paths == [f"services[0].routes[0]: {message}"]
    assert info.value.flattened_errors[0]["errors"] == [{"type": "entity", "message": message}]
