"""Which Admin API the doctor asks (``gateway.doctor.admin.admin_url``) and how a failure reads."""

from __future__ import annotations

import pytest

from gateway.doctor.admin import AdminApi, AdminError, admin_url, segment
from gateway.settings import load_settings
from tests.fixtures.ports import closed_port


def test_given_url_wins_over_the_settings() -> None:
    settings = load_settings(None, env={"KONG_ADMIN_LISTEN": "127.0.0.1:9101"})
    assert admin_url("http://10.0.0.5:8001/", settings) == "http://10.0.0.5:8001"


def test_kongs_default_admin_listen_is_loopback_8001() -> None:
    assert admin_url(None, load_settings(None, env={})) == "http://127.0.0.1:8001"


@pytest.mark.parametrize(
    ("listen", "url"),
    [
        ("0.0.0.0:9101", "http://127.0.0.1:9101"),
        ("[::]:9101", "http://[::1]:9101"),
        ("[::1]:9101", "http://[::1]:9101"),
        ("127.0.0.2:9101, 127.0.0.3:9102", "http://127.0.0.2:9101"),
    ],
)
def test_the_first_admin_listen_entry_with_wildcards_made_loopback(listen: str, url: str) -> None:
    assert admin_url(None, load_settings(None, env={"KONG_ADMIN_LISTEN": listen})) == url


def test_admin_listen_off_asks_for_admin() -> None:
    with pytest.raises(AdminError, match="--admin URL"):
        admin_url(None, load_settings(None, env={"KONG_ADMIN_LISTEN": "off"}))


def test_an_unreachable_admin_api_is_named() -> None:
    base = f"http://127.0.0.1:{closed_port()}"
    with pytest.raises(AdminError, match=f"cannot reach the Admin API at {base} "):
        AdminApi(base, timeout=5).get("/services/x/tls")


def test_segments_are_quoted() -> None:
    assert segment("*.wild.test") == "%2A.wild.test"
    assert segment("a/b c") == "a%2Fb%20c"
