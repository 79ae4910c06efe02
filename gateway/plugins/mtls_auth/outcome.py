"""mtls-auth's verdict for one presented chain (``Outcome``): the exit to send, or the consumer and the headers to
set upstream; plus Kong's messages and header names. Kept apart from the handler so that the verdict, which is
cached per connection and per chain, is one small value type.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from gateway.plugins.base import Exit, PluginContext
from gateway.plugins.mtls_auth.trace import AuthFacts

__all__ = ["NAME", "Outcome", "consumer_headers", "wire"]

NAME: Final = "mtls-auth"

NO_CERT_MESSAGE: Final = "No required TLS certificate was sent"
FAILED_MESSAGE: Final = "TLS certificate failed verification"
NO_CN_MESSAGE: Final = "Certificate missing Common Name"
NO_CERT_EXIT: Final = Exit.message(401, NO_CERT_MESSAGE)
FAILED_EXIT: Final = Exit.message(401, FAILED_MESSAGE)
NO_CN_EXIT: Final = Exit.message(401, NO_CN_MESSAGE)
UNEXPECTED_EXIT: Final = Exit.message(500, "An unexpected error occurred")

H_CONSUMER_ID: Final = "X-Consumer-ID"
H_CUSTOM_ID: Final = "X-Consumer-Custom-ID"
H_USERNAME: Final = "X-Consumer-Username"
H_CREDENTIAL: Final = "X-Credential-Identifier"
H_ANONYMOUS: Final = "X-Anonymous-Consumer"
H_CERT_DN: Final = "X-Client-Cert-DN"
H_CERT_SAN: Final = "X-Client-Cert-SAN"

CLEARED: Final = tuple(
    (name, None) for name in (H_CONSUMER_ID, H_CUSTOM_ID, H_USERNAME, H_CREDENTIAL, H_ANONYMOUS, H_CERT_DN, H_CERT_SAN)
)


class Outcome:
    """What the access phase does for one presented chain: answer with ``exit``, or authenticate.

    Attributes:
        exit: the response to send (None: proceed).
        reason / level: the error-log line for a failure (``[mtls-auth] <reason>``).
        consumer / credential / groups: what ``kong.client.authenticate`` records.
        headers: upstream header changes ((name, value) set, (name, None) clear), in order.
        facts: what was established about the chain, for the decision record (``trace.AuthFacts``).
    """

    __slots__ = ("_header_map", "consumer", "credential", "exit", "facts", "groups", "headers", "level", "reason")

    def __init__(
        self,
        *,
        exit: Exit | None = None,
        reason: str = "",
        level: str = "error",
        consumer: Mapping[str, Any] | None = None,
        credential: Mapping[str, Any] | None = None,
        groups: tuple[str, ...] | None = None,
        headers: tuple[tuple[str, str | None], ...] = (),
        facts: AuthFacts | None = None,
    ) -> None:
        self.exit = exit
        self.facts = facts
        self.reason = reason
        self.level = level
        self.consumer = consumer
        self.credential = credential
        self.groups = groups
        self.headers = headers
        # applied with one dict.update per request (keepalive requests reuse this object)
        self._header_map = {name.lower(): (name, value) for name, value in headers}

    def apply(self, ctx: PluginContext) -> Exit | None:
        if self.reason:
            ctx.log(self.level, NAME, self.reason)
        if self.exit is not None:
            return self.exit
        ctx.upstream_headers.update(self._header_map)
        if self.consumer is not None:
            ctx.consumer = self.consumer
            ctx.credential = self.credential
        if self.groups is not None:
            ctx.authenticated_groups = self.groups
        return None

    def with_facts(self, facts: AuthFacts) -> Outcome:
        """The same verdict with other facts (the shared anonymous outcome, reached for different reasons)."""
        return Outcome(
            exit=self.exit,
            reason=self.reason,
            level=self.level,
            consumer=self.consumer,
            credential=self.credential,
            groups=self.groups,
            headers=self.headers,
            facts=facts,
        )

    def __repr__(self) -> str:
        if self.exit is not None:
            return f"Outcome(exit={self.exit.status}, reason={self.reason!r})"
        return f"Outcome(consumer={(self.consumer or {}).get('id')}, headers={self.headers})"


def wire(value: object) -> str:
    """A header value as the bytes nginx would send: UTF-8 (held as latin-1 text, as the proxy writes heads), with
    CR/LF/NUL - which a certificate name or a consumer field could carry - replaced by spaces."""
    text = str(value)
    if "\r" in text or "\n" in text or "\0" in text:
        text = text.replace("\r", " ").replace("\n", " ").replace("\0", " ")
    return text.encode("utf-8").decode("latin-1")


def consumer_headers(consumer: Mapping[str, Any], anonymous: bool) -> tuple[tuple[str, str | None], ...]:
    """Kong's ``set_consumer``: each header set when the value exists, cleared otherwise."""
    custom_id, username = consumer.get("custom_id"), consumer.get("username")
    return (
        (H_CONSUMER_ID, wire(consumer["id"])),
        (H_CUSTOM_ID, wire(custom_id) if custom_id is not None else None),
        (H_USERNAME, wire(username) if username is not None else None),
        (H_CREDENTIAL, None),
        (H_ANONYMOUS, "true" if anonymous else None),
        (H_CERT_DN, None),
        (H_CERT_SAN, None),
    )
