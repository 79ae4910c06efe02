"""TLS decision records: what each of the four layers decided, as ``key=value`` pairs (``docs/tls-trace.md``).

Each layer keeps its own record type next to the code that makes the decision (``tls.served.trace``,
``plugins.mtls_auth.trace``, ``tls.upstream.trace``); this module only holds what they share: the response header
that carries each layer, the origin vocabulary of a setting (``service``, ``upstream``, ``global setting <name>``,
``default``) and the one rendering, ``key=value; key=value``.

Records are built only when someone asks (a ``Kong-Debug`` request with ``allow_debug_header = on``, or the Admin
API's ``/tls`` endpoints), from facts the hot path already keeps: nothing here runs for an ordinary request.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Protocol

__all__ = ["NONE", "Origin", "Pairs", "Sourced", "TraceHeader", "TraceRecord", "onoff", "render", "yesno"]

#: the value of a key whose subject does not exist (no SNI sent, no certificate presented...)
NONE: Final = "none"

#: a record's content, in its documented key order
Pairs = tuple[tuple[str, str], ...]


class TraceHeader(enum.Enum):
    """The response header of each layer's record (sent with ``Kong-Debug`` and ``allow_debug_header = on``)."""

    DOWNSTREAM = "X-Gateway-TLS-Downstream"  # layer 1: the certificate served to the client
    CLIENT_AUTH = "X-Gateway-TLS-Client-Auth"  # layer 2: the client's certificate (mtls-auth)
    UPSTREAM_CERT = "X-Gateway-TLS-Upstream-Cert"  # layer 3: the client certificate shown to the upstream
    UPSTREAM_TRUST = "X-Gateway-TLS-Upstream-Trust"  # layer 4: how the upstream's certificate was checked


class Origin(enum.Enum):
    """Where an effective upstream TLS value came from (Kong's precedence: service > upstream > global > default)."""

    SERVICE = "service"
    UPSTREAM = "upstream"
    GLOBAL = "global"
    DEFAULT = "default"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class Sourced:
    """An origin, plus the setting's name when the value came from a global setting."""

    origin: Origin
    setting: str | None = None

    @property
    def label(self) -> str:
        """``service``, ``upstream``, ``global setting proxy_ssl_verify``, ``default`` or ``none``."""
        if self.origin is Origin.GLOBAL and self.setting is not None:
            return f"global setting {self.setting}"
        return self.origin.value


class TraceRecord(Protocol):
    """A layer's decision record."""

    @property
    def header(self) -> TraceHeader: ...

    def pairs(self) -> Pairs: ...


def yesno(flag: bool) -> str:
    return "yes" if flag else "no"


def onoff(flag: bool) -> str:
    return "on" if flag else "off"


def _value(text: str) -> str:
    """A value that survives the ``; `` separator and a header line: CR/LF/NUL become spaces, a value holding ``;``
    or ``"`` is quoted (``"..."`` with ``\\"`` and ``\\\\``), and non-ASCII is sent as its UTF-8 bytes."""
    if "\r" in text or "\n" in text or "\0" in text:
        text = text.replace("\r", " ").replace("\n", " ").replace("\0", " ")
    if ";" in text or '"' in text:
        text = '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text.encode("utf-8").decode("latin-1")


def render(pairs: Iterable[tuple[str, str]]) -> str:
    """``key=value; key=value`` (the header value of a record)."""
    return "; ".join(f"{key}={_value(value)}" for key, value in pairs)
