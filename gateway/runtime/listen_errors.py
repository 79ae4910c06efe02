"""One wording for a listener that cannot be bound, whichever setting it comes from.

The address is usually taken by something else (another gateway, a Kong, a development server on 8000), and the
fix is always the same: move the listener. So the message names the setting and its ``KONG_*`` variable, shows the
setting's current value to edit, and says what the errno means in words::

    could not listen on 0.0.0.0:8000 (proxy_listen): address already in use, something else listens there;
    change proxy_listen in the configuration file or KONG_PROXY_LISTEN in the environment
    (now: 0.0.0.0:8000, 0.0.0.0:8443 ssl)

(one line). The reason comes from the errno, not from the exception's text: uvloop's says
``error while attempting to bind on address ('0.0.0.0', 8000): address already in use`` where a plain ``bind()``
says ``Address already in use``, and the user should not see two wordings for one cause.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence

from gateway.settings import Listener

__all__ = ["listen_failure", "render_listener"]

#: errno -> what it means for a listener, in words
_MEANING: dict[int, str] = {
    errno.EADDRINUSE: "address already in use, something else listens there",
    errno.EACCES: "permission denied, ports below 1024 need root or CAP_NET_BIND_SERVICE",
    errno.EADDRNOTAVAIL: "address not available, no interface of this machine has it",
}

_DEFAULT_BACKLOG = Listener(host="", port=0).backlog


def render_listener(listener: Listener) -> str:
    """One listener as it would be written in the setting (``[::1]:8443 ssl reuseport backlog=16384``)."""
    host = f"[{listener.host}]" if ":" in listener.host else listener.host
    words = [f"{host}:{listener.port}"]
    words += [flag for flag in ("ssl", "http2", "reuseport") if getattr(listener, flag)]
    if listener.backlog != _DEFAULT_BACKLOG:
        words.append(f"backlog={listener.backlog}")
    return " ".join(words)


def listen_failure(setting: str, listeners: Sequence[Listener], failed: Listener, cause: OSError) -> str:
    """The start-up error for ``failed`` (one entry of ``setting``, whose entries are ``listeners``)."""
    if cause.errno in _MEANING:
        reason = _MEANING[cause.errno]
    elif cause.errno:
        reason = os.strerror(cause.errno).lower()
    else:
        reason = str(cause)
    now = ", ".join(render_listener(listener) for listener in listeners) or "off"
    return (
        f"could not listen on {render_listener(failed).split()[0]} ({setting}): {reason}; "
        f"change {setting} in the configuration file or KONG_{setting.upper()} in the environment (now: {now})"
    )
