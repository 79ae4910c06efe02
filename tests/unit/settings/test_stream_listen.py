"""``stream_listen``: off by default, Kong's syntax and flags, what is refused and why."""

from __future__ import annotations

import pathlib

import pytest

from gateway.settings import ConfigError, Listener, load_settings

CONF = pathlib.Path(__file__).parents[3] / "conf" / "gateway.conf"


def test_off_by_default_as_in_kong() -> None:
    assert load_settings(env={}).stream_listen == ()
    assert "#stream_listen = off" in CONF.read_text()


def test_kongs_syntax_from_the_environment_and_the_file(tmp_path: pathlib.Path) -> None:
    env = {"KONG_STREAM_LISTEN": "0.0.0.0:5555, 127.0.0.1:5556 ssl reuseport backlog=64, [::1]:5557 bind"}
    assert load_settings(env=env).stream_listen == (
        Listener("0.0.0.0", 5555),
        Listener("127.0.0.1", 5556, ssl=True, reuseport=True, backlog=64),
        Listener("::1", 5557),
    )
    conf = tmp_path / "g.conf"
    conf.write_text("stream_listen = 127.0.0.1:9000 ssl\n")
    assert load_settings(str(conf), env={}).stream_listen == (Listener("127.0.0.1", 9000, ssl=True),)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "0.0.0.0:5555 proxy_protocol",
            "stream_listen = 0.0.0.0:5555 proxy_protocol: the 'proxy_protocol' flag is not supported "
            "(this gateway does not read the PROXY protocol header)",
        ),
        (
            "0.0.0.0:5555 udp",
            "stream_listen = 0.0.0.0:5555 udp: the 'udp' flag is not supported (the stream subsystem here proxies "
            "TCP only (no UDP listener, no udp routes))",
        ),
        (
            "0.0.0.0:5555 http2",
            "stream_listen has an invalid flag 'http2' in '0.0.0.0:5555 http2' (accepted: ssl, reuseport, bind, "
            "backlog=N)",
        ),
        ("5555", "stream_listen has an invalid entry: '5555' (expected host:port [ssl] ...)"),
    ],
)
def test_refused_loudly(value: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(env={"KONG_STREAM_LISTEN": value})
    assert str(caught.value) == message
