"""``gateway.runtime.notices``: which settings warn, and where the warning goes."""

from __future__ import annotations

import io
import pathlib
import sys

import pytest

from gateway.observability.errorlog import ErrorLog
from gateway.runtime.notices import announce, startup_warnings
from gateway.settings import load_settings


def test_the_defaults_warn_of_nothing() -> None:
    assert startup_warnings(load_settings(env={})) == []


def test_each_case_warns_once_with_its_key() -> None:
    env = {
        "KONG_ADMN_LISTEN": "x",
        "KONG_CLIENT_SSL_CERT_KEY": "/k.pem",
        "KONG_ADMIN_LISTEN": "127.0.0.1:8001 http2",
    }
    warnings = startup_warnings(load_settings(env=env))
    assert [w.key for w in warnings] == ["env", "client_ssl", "admin_listen"]
    assert warnings[0].text.endswith("KONG_ADMN_LISTEN (did you mean KONG_ADMIN_LISTEN?)")
    assert warnings[1].text.startswith("client_ssl_cert_key set but client_ssl = off")
    assert warnings[2].text.startswith("admin_listen: the http2 flag on 127.0.0.1:8001 is accepted")
    # client_ssl on: the pair is used, nothing to say
    on = {"KONG_CLIENT_SSL": "on", "KONG_CLIENT_SSL_CERT": "/c.pem", "KONG_CLIENT_SSL_CERT_KEY": "/k.pem"}
    assert startup_warnings(load_settings(env=on)) == []


def test_announce_logs_and_prints(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = ErrorLog(str(tmp_path / "error.log"), "notice")
    announce(log, "warn", "[config] something to know")
    announce(log, "notice", "[runtime] something else")
    log.close()
    assert capsys.readouterr().err == "Warning: something to know\nNotice: something else\n"
    lines = (tmp_path / "error.log").read_text().splitlines()
    assert "[warn]" in lines[0] and lines[0].endswith("[config] something to know")
    assert "[notice]" in lines[1] and lines[1].endswith("[runtime] something else")


def test_announce_to_a_log_on_stderr_writes_once(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    announce(ErrorLog(None, "notice", stream=stream), "warn", "[config] once")
    assert stream.getvalue().count("once") == 1 and "[warn]" in stream.getvalue()
