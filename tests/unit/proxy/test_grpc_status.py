"""Kong's gRPC mapping of generated responses and the gRPC route checks, as pure functions (``proxy/grpc_status.py``,
``proxy/access.py``); the wire form with real gRPC clients is in ``tests/integration/proxy/test_grpc_errors.py``."""

from __future__ import annotations

import pytest

from gateway.downstream.request import RequestHead
from gateway.proxy.access import route_refusal
from gateway.proxy.grpc_status import error_page_grpc, grpc_headers, grpc_status, is_grpc_request, message_json
from gateway.proxy.matchers import Route


@pytest.mark.parametrize(
    ("status", "code"),
    [
        *((200, 0), (404, 5), (401, 16), (403, 7), (429, 8), (503, 14), (504, 4), (501, 12), (499, 1)),
        *((502, 13), (505, 13), (426, 3), (415, 3), (204, 0), (301, 2), (101, 2)),  # by class
    ],
)
def test_http_to_grpc_status_with_kongs_class_fallbacks(status: int, code: int) -> None:
    assert grpc_status(status) == code


def test_grpc_headers_use_the_code_name_without_a_message() -> None:
    assert grpc_headers(404) == (("grpc-status", "5"), ("grpc-message", "NotFound"))
    assert grpc_headers(502, "boom") == (("grpc-status", "13"), ("grpc-message", "boom"))


def _head(version: str, content_type: str | None) -> RequestHead:
    headers = [("content-type", content_type)] if content_type is not None else []
    head = RequestHead("POST", "/pkg.S/M", version, headers, True)
    head.content_type = content_type
    return head


def test_grpc_request_needs_http2_and_a_grpc_content_type() -> None:
    assert is_grpc_request(_head("2.0", "application/grpc"))
    assert is_grpc_request(_head("2.0", "application/grpc+proto"))
    assert not is_grpc_request(_head("1.1", "application/grpc"))
    assert not is_grpc_request(_head("2.0", "application/json"))
    assert not is_grpc_request(_head("2.0", None))


def test_error_page_grpc_branch_reads_accept_then_content_type_then_default() -> None:
    assert error_page_grpc(None, "application/grpc", "text/plain")
    assert not error_page_grpc("*/*", "application/grpc", "text/plain")
    assert error_page_grpc(None, None, "application/grpc")
    assert message_json('a "q"') == b'{"message":"a \\"q\\""}'


def _route(protocols: list[str]) -> Route:
    return Route({"id": "r", "protocols": protocols}, None)


HTTPS = ("https", "h", "443", "/", None)
HTTP = ("http", "h", "80", "/", None)


def test_grpc_route_refusals_in_kongs_order() -> None:
    both = _route(["grpc", "grpcs"])
    refusal = route_refusal(both, HTTPS, "/x", "application/json", http2=True)
    assert refusal is not None and (refusal.status, refusal.message) == (415, "Non-gRPC request matched gRPC route")
    refusal = route_refusal(both, HTTPS, "/x", "application/grpc", http2=False)
    assert refusal is not None and (refusal.status, refusal.message) == (426, "Please use HTTP2 protocol")
    assert route_refusal(both, HTTP, "/x", "application/grpc", http2=True) is None
    assert route_refusal(both, HTTPS, "/x", "application/grpc", http2=True) is None


def test_grpcs_only_route_without_tls_answers_grpc_status_1() -> None:
    refusal = route_refusal(_route(["grpcs"]), HTTP, "/x", "application/grpc", http2=True)
    assert refusal is not None
    assert (refusal.status, refusal.message, refusal.content_type) == (200, None, "application/grpc")
    assert dict(refusal.extra) == {"grpc-status": "1", "grpc-message": "gRPC request matched gRPCs route"}
    assert route_refusal(_route(["grpcs"]), HTTPS, "/x", "application/grpc", http2=True) is None
