"""Start-up warnings: settings that are accepted but change what the gateway does, said where the user looks.

A user starts the gateway in a terminal and reads that terminal, not ``logs/error.log``. So every warning about
the configuration is logged (``warn``, tagged ``[config]``) *and* printed on stderr as ``Warning: <text>``, unless
the error log is that same stderr (``proxy_error_log = /dev/stderr``, as in Kong's container images), where the
line would only appear twice. The cases, as data (``WARNINGS``):

- ``KONG_*`` variables that name no setting: ignored, as Kong ignores them (compose files carry Postgres settings),
  but a typo (``KONG_PROXY_LISTENER``) would otherwise leave the user wondering why nothing changed; the closest key
  is suggested.
- ``client_ssl_cert`` (or its key) set while ``client_ssl = off``: nothing is presented to upstreams.
- the ``http2`` flag on an ``admin_listen`` entry: accepted because Kong's default Admin listeners carry it, but the
  Admin API serves HTTP/1.1 only (``proxy_listen`` honours the flag: HTTP/2 by ALPN on ``ssl`` entries, with prior
  knowledge on plain ones).

Everything Kong would act on and this gateway cannot is refused instead (``gateway.settings.UNSUPPORTED``); these
are the cases where starting is right and silence is not.
"""

from __future__ import annotations

import difflib
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from gateway.observability.errorlog import ErrorLog
from gateway.settings import SPECS, Settings

__all__ = ["WARNINGS", "StartupWarning", "announce", "startup_warnings"]


@dataclass(frozen=True, slots=True)
class StartupWarning:
    """One warning: the setting it is about, and the sentence."""

    key: str
    text: str


def _unknown_env(settings: Settings) -> Iterator[StartupWarning]:
    for name in settings.ignored_env:
        close = difflib.get_close_matches(name[5:].lower(), list(SPECS), n=1, cutoff=0.8)
        hint = f" (did you mean KONG_{close[0].upper()}?)" if close else " (no such setting)"
        yield StartupWarning("env", f"ignoring unknown setting from the environment: {name}{hint}")


def _client_cert_unused(settings: Settings) -> Iterator[StartupWarning]:
    if settings.client_ssl:
        return
    named = [key for key in ("client_ssl_cert", "client_ssl_cert_key") if getattr(settings, key)]
    if named:
        yield StartupWarning(
            "client_ssl",
            f"{' and '.join(named)} set but client_ssl = off: no client certificate is presented to upstreams; "
            "set client_ssl = on (KONG_CLIENT_SSL=on) to present it, or remove the setting",
        )


def _http2_flag(settings: Settings) -> Iterator[StartupWarning]:
    key = "admin_listen"
    flagged = [f"{ls.host}:{ls.port}" for ls in settings.admin_listen if ls.http2]
    if flagged:
        yield StartupWarning(
            key,
            f"{key}: the http2 flag on {', '.join(flagged)} is accepted (Kong's default listeners carry it) but "
            "the Admin API serves HTTP/1.1 only",
        )


#: every check, in the order its warnings are printed
WARNINGS: tuple[Callable[[Settings], Iterator[StartupWarning]], ...] = (_unknown_env, _client_cert_unused, _http2_flag)


def startup_warnings(settings: Settings) -> list[StartupWarning]:
    return [warning for check in WARNINGS for warning in check(settings)]


def _log_is_stderr(log: ErrorLog) -> bool:
    if log.path is None:  # the log before the prefix's is open writes to stderr
        return True
    try:
        return os.path.samestat(os.stat(log.path), os.fstat(sys.stderr.fileno()))
    except (OSError, ValueError):
        return False


def announce(log: ErrorLog, level: str, message: str) -> None:
    """Log ``message`` (``[config]``-style tags included) and print it on stderr as ``Warning:`` / ``Notice:``."""
    log.log(level, message)
    if not _log_is_stderr(log):
        word = "Warning" if level == "warn" else level.capitalize()
        text = message.split("] ", 1)[1] if message.startswith("[") and "] " in message else message
        print(f"{word}: {text}", file=sys.stderr, flush=True)
