"""Body and query parsing: Kong's arguments.lua / arguments_decoder.lua rules."""

from __future__ import annotations

import pytest

from gateway.admin.bodies import (
    BodyError,
    check_body_headers,
    decode_args,
    load_args,
    parse_multipart,
    parse_urlencoded,
)
from gateway.admin.http import Request


def _req(method: str, body: bytes, *types: str, query: str = "") -> Request:
    headers = [("Content-Type", t) for t in types] + [("Content-Length", str(len(body)))]
    return Request(method, "/x", query, headers, body)


def _multipart(fields: list[tuple[str, str, str | None]]) -> tuple[bytes, str]:
    boundary = "XyZ123"
    out = b""
    for name, value, filename in fields:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n{value}\r\n".encode()
    out += f"--{boundary}--\r\n".encode()
    return out, f"multipart/form-data; boundary={boundary}"


class TestNesting:
    def test_dotted_keys_nest(self) -> None:
        assert decode_args({"client_certificate.id": "u1"}) == {"client_certificate": {"id": "u1"}}

    def test_one_based_bracket_index_under_a_dotted_key(self) -> None:
        flat = {"config.ca_certificates[2]": "b", "config.ca_certificates[1]": "a"}
        assert decode_args(flat) == {"config": {"ca_certificates": ["a", "b"]}}

    def test_empty_brackets_append(self) -> None:
        assert decode_args(parse_urlencoded("snis[]=a&snis[]=b")) == {"snis": ["a", "b"]}

    def test_repeated_keys_become_a_list(self) -> None:
        assert decode_args(parse_urlencoded("snis=a&snis=b&snis=c")) == {"snis": ["a", "b", "c"]}

    def test_encoded_brackets_are_understood(self) -> None:
        assert decode_args(parse_urlencoded("snis%5B1%5D=a&snis%5B2%5D=b")) == {"snis": ["a", "b"]}

    def test_map_keys_only_for_writes(self) -> None:
        assert decode_args({"headers[x]": "1"}, allow_maps=True) == {"headers": {"x": "1"}}
        assert decode_args({"headers[x]": "1"}, allow_maps=False) == {"headers[x]": "1"}

    def test_bare_query_key_is_true_and_plus_is_space(self) -> None:
        assert parse_urlencoded("custom_id&a=b+c&d=%2A") == {"custom_id": True, "a": "b c", "d": "*"}


class TestHeaders:
    def test_other_content_type_with_body_is_415_nginx_page(self) -> None:
        response = check_body_headers(_req("POST", b"{}", "text/plain"))
        assert response is not None and response.status == 415
        assert b"<title>415 Unsupported Media Type</title>" in response.body

    def test_no_content_type_with_a_body_is_415(self) -> None:
        response = check_body_headers(Request("POST", "/x", "", [("Content-Length", "7")], b"invalid"))
        assert response is not None and response.status == 415

    def test_no_content_type_and_no_body_is_fine(self) -> None:
        assert check_body_headers(Request("POST", "/x", "", [("Content-Length", "0")], b"")) is None

    def test_two_content_types_is_400(self) -> None:
        response = check_body_headers(_req("POST", b"{}", "application/json", "application/json"))
        assert response is not None and response.status == 400
        assert response.body == b"Multiple Content-Type headers not allowed"

    def test_yaml_only_where_accepted(self) -> None:
        assert check_body_headers(_req("POST", b"a: 1", "application/yaml"), accepts_yaml=True) is None
        refused = check_body_headers(_req("POST", b"a: 1", "application/yaml"))
        assert refused is not None and refused.status == 415

    def test_get_bodies_are_not_checked(self) -> None:
        assert check_body_headers(_req("GET", b"x", "text/plain")) is None


class TestLoad:
    @pytest.mark.parametrize("body", [b"{", b"", b"[1,2]", b'"s"', b"null"])
    def test_json_must_be_an_object(self, body: bytes) -> None:
        with pytest.raises(BodyError) as info:
            load_args(_req("POST", body, "application/json"))
        assert info.value.response.status == 400
        assert info.value.response.json() == {"message": "Cannot parse JSON body"}

    def test_json_keeps_null(self) -> None:
        args = load_args(_req("PATCH", b'{"snis": null}', "application/json"))
        assert args.post == {"snis": None}
        assert not args.is_form

    def test_form_is_coerced_by_the_entity_layer(self) -> None:
        seen: list[dict[str, object]] = []

        def coerce(data: dict[str, object]) -> dict[str, object]:
            seen.append(data)
            return {**data, "port": 80}

        args = load_args(_req("POST", b"host=a&port=80&tags[]=x", "application/x-www-form-urlencoded"), coerce)
        assert seen == [{"host": "a", "port": "80", "tags": ["x"]}]
        assert args.post["port"] == 80

    def test_multipart_file_part_is_a_string(self) -> None:
        body, ctype = _multipart([("cert", "-----BEGIN CERTIFICATE-----\nAA\n", "ca.crt"), ("snis[1]", "a", None)])
        assert parse_multipart(body, ctype) == {"cert": "-----BEGIN CERTIFICATE-----\nAA\n", "snis[1]": "a"}
        args = load_args(_req("POST", body, ctype))
        assert args.post == {"cert": "-----BEGIN CERTIFICATE-----\nAA\n", "snis": ["a"]}
        assert args.is_form

    def test_query_args_are_decoded_too(self) -> None:
        args = load_args(_req("GET", b"", query="size=3&offset=abc%3D&tags=a,b"))
        assert args.uri == {"size": "3", "offset": "abc=", "tags": "a,b"}
