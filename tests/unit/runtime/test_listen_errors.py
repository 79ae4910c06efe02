"""``gateway.runtime.listen_errors``: the one wording, for any listener setting and errno."""

from __future__ import annotations

import errno

from gateway.runtime.listen_errors import listen_failure, render_listener
from gateway.settings import Listener


def test_the_wording_names_the_setting_its_variable_and_its_value() -> None:
    listeners = (Listener("0.0.0.0", 8000), Listener("0.0.0.0", 8443, ssl=True, http2=True))
    # uvloop's text for the same errno differs from bind()'s: the reason comes from the errno
    cause = OSError(errno.EADDRINUSE, "error while attempting to bind on address ('0.0.0.0', 8443): address in use")
    assert listen_failure("proxy_listen", listeners, listeners[1], cause) == (
        "could not listen on 0.0.0.0:8443 (proxy_listen): address already in use, something else listens there; "
        "change proxy_listen in the configuration file or KONG_PROXY_LISTEN in the environment "
        "(now: 0.0.0.0:8000, 0.0.0.0:8443 ssl http2)"
    )


def test_any_listener_setting_gets_the_same_wording() -> None:
    """status_listen (or any later listener) calls the same function with its own setting name."""
    status = (Listener("127.0.0.1", 8007, reuseport=True, backlog=16384),)
    text = listen_failure("status_listen", status, status[0], OSError(errno.EADDRINUSE, "Address already in use"))
    assert text.startswith("could not listen on 127.0.0.1:8007 (status_listen): address already in use")
    assert "KONG_STATUS_LISTEN in the environment (now: 127.0.0.1:8007 reuseport backlog=16384)" in text


def test_other_errnos_say_what_they_mean() -> None:
    ipv6 = Listener("::1", 80)
    denied = listen_failure("admin_listen", (ipv6,), ipv6, OSError(errno.EACCES, "Permission denied"))
    assert denied.startswith("could not listen on [::1]:80 (admin_listen): permission denied, ports below 1024 ")
    odd = listen_failure("admin_listen", (ipv6,), ipv6, OSError(errno.ENOBUFS, "x"))
    assert "(admin_listen): no buffer space available;" in odd
    assert render_listener(Listener("127.0.0.1", 1, backlog=511)) == "127.0.0.1:1"
