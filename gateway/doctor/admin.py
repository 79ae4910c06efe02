"""The running gateway's Admin API, as ``gateway doctor service`` and ``gateway doctor sni`` read it.

Which address (``admin_url``): ``--admin URL`` when given; otherwise the first ``admin_listen`` entry of the
settings that ``gateway start`` would read (``-c CONF``, then ``KONG_*``; ``-p PREFIX`` does not change the
address), as ``http://HOST:PORT`` with a wildcard address (``0.0.0.0``, ``[::]``) replaced by loopback. Kong's default
``admin_listen`` makes that ``http://127.0.0.1:8001``. An HTTPS Admin API listener is refused by ``gateway start``
(``docs/compatibility.md``), so the address is always plain HTTP.

Only ``GET`` is sent, with the standard library's HTTP client (the doctor needs no runtime dependency the gateway
does not have). Every failure is an ``AdminError`` whose text names the URL: the doctor prints it and exits 1.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Final

from gateway.settings import Settings

__all__ = ["UNREACHABLE_FIX", "AdminApi", "AdminError", "admin_url", "segment"]

TIMEOUT: Final = 10.0
UNREACHABLE_FIX: Final = "start the gateway, or give its Admin API's address with --admin URL."
_WILDCARDS: Final = {"0.0.0.0": "127.0.0.1", "::": "::1", "[::]": "[::1]", "*": "127.0.0.1"}


class AdminError(Exception):
    """The Admin API could not be asked, or did not answer as documented; the text says which URL and why."""


def admin_url(given: str | None, settings: Settings | None) -> str:
    """``given`` (trailing ``/`` dropped), else the first ``admin_listen`` entry of ``settings`` (see the module)."""
    if given:
        return given.rstrip("/")
    if settings is None or not settings.admin_listen:
        raise AdminError("admin_listen is off in these settings: give the Admin API's address with --admin URL")
    first = settings.admin_listen[0]
    host = _WILDCARDS.get(first.host, first.host)
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{first.port}"


class AdminApi:
    """``GET`` JSON documents from one Admin API base URL."""

    def __init__(self, base: str, timeout: float = TIMEOUT) -> None:
        self.base = base
        self.timeout = timeout

    def url(self, path: str) -> str:
        return f"{self.base}{path}"

    def get(self, path: str, **query: str | None) -> dict[str, Any] | None:
        """The JSON object at ``path`` (segments already quoted), None for a 404.

        Raises:
            AdminError: no connection, a timeout, another non-200 status, or a body that is not a JSON object.
        """
        found = self.find(path, **query)
        return None if isinstance(found, str) else found

    def find(self, path: str, **query: str | None) -> dict[str, Any] | str:
        """As ``get``, but a 404 gives its ``message`` (``Not found``, or why there is nothing to answer)."""
        params = {k: v for k, v in query.items() if v is not None}
        url = self.url(path) + (f"?{urllib.parse.urlencode(params)}" if params else "")
        try:
            with urllib.request.urlopen(urllib.request.Request(url, method="GET"), timeout=self.timeout) as answer:
                body = answer.read()
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return _message(exc)
            raise AdminError(
                f"the Admin API at {self.base} answered {exc.code} to GET {path}: {_message(exc)}"
            ) from exc
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise AdminError(f"cannot reach the Admin API at {self.base} ({reason})") from exc
        try:
            document = json.loads(body)
        except ValueError as exc:
            raise AdminError(f"the Admin API at {self.base} answered GET {path} with something not JSON") from exc
        if not isinstance(document, dict):
            raise AdminError(f"the Admin API at {self.base} answered GET {path} with a JSON {type(document).__name__}")
        return document


def segment(text: str) -> str:
    """One path segment, percent-encoded (a service name or an SNI with ``*``)."""
    return urllib.parse.quote(text, safe="")


def _message(exc: urllib.error.HTTPError) -> str:
    try:
        document = json.loads(exc.read())
    except (ValueError, OSError):
        return exc.reason or "no message"
    return str(document.get("message", document)) if isinstance(document, dict) else str(document)
