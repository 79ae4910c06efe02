"""``gateway.tls.pem_settings``: the one reader of PEM settings, on Kong's rules (path, then base64, then PEM)."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from gateway.settings import ConfigError
from gateway.tls.pem_settings import decode_base64, read_pem_setting
from tests.fixtures.certs import make_ca

PEM = make_ca("Settings CA").cert_pem


def test_a_path_is_read_first(tmp_path: Path) -> None:
    # a file whose name is valid base64 is still a file: Kong tries the path before decoding
    named = tmp_path / "QUJD"
    named.write_text(PEM)
    assert read_pem_setting("client_ssl_cert", str(named)) == PEM.encode()


def test_base64_and_base64url_without_padding_and_inline_pem() -> None:
    standard = base64.b64encode(PEM.encode()).decode()
    url = base64.urlsafe_b64encode(PEM.encode()).decode().rstrip("=")
    for value in (standard, url, PEM):
        assert read_pem_setting("lua_ssl_trusted_certificate", value) == PEM.encode()
    assert decode_base64("not base64!") is None


def test_each_side_keeps_its_wording(tmp_path: Path) -> None:
    missing = str(tmp_path / "no.pem")
    with pytest.raises(ConfigError, match=rf"^client_ssl_cert: failed loading {missing}$"):
        read_pem_setting("client_ssl_cert", missing)
    with pytest.raises(ConfigError, match=rf"^ssl_cert: failed loading certificate from {missing}$"):
        read_pem_setting("ssl_cert", missing, "certificate")
    with pytest.raises(ConfigError, match=rf"^ssl_cert_key: failed loading key from {tmp_path}: Is a directory$"):
        read_pem_setting("ssl_cert_key", str(tmp_path), "key")


def test_base64_of_something_that_is_not_pem_is_refused() -> None:
    value = base64.b64encode(b"hello").decode()
    with pytest.raises(ConfigError, match=rf"^proxy_ssl_trusted_certificate: failed loading {value}$"):
        read_pem_setting("proxy_ssl_trusted_certificate", value)
