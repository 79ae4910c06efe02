"""Findings: what a diagnosis says, as data first and words second.

Every check of ``gateway doctor`` and of ``gateway check``'s file pass produces ``Finding`` values; nothing is
printed while diagnosing. A finding has a ``Kind`` (an enum: the stable name tests and ``--json`` readers match on),
a severity, the sentence a person reads, and for warnings and problems the fix. Rendering (one line per finding,
or JSON) and the exit status are derived from the list, so the text output and the JSON output can never disagree.

Severities:

- ``ok``: a fact worth knowing (the order is right, the key matches, the depth the chain needs);
- ``warning``: works, but is wasteful or fragile (the root in the bundle, an expiry within 30 days);
- ``problem``: something fails (a handshake, a verification, or the gateway's start). Exit status 1.

``Kind.refused_at_start`` says whether ``gateway start`` refuses a configuration whose certificate setting has that
finding. ``gateway check`` uses it to keep its promise ("valid" means "start accepts it", and a problem means start
or Kong would refuse): a doctor problem that start accepts, such as an expired certificate, is shown by ``check`` as a
warning (``for_check``).
"""

from __future__ import annotations

import dataclasses
import enum
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "EXIT_OK",
    "EXIT_PROBLEM",
    "Finding",
    "Kind",
    "Severity",
    "exit_status",
    "render_json",
    "render_text",
    "summary",
]

EXIT_OK = 0
EXIT_PROBLEM = 1


class Severity(enum.Enum):
    """How much a finding matters; the value is the word printed."""

    OK = "ok"
    WARNING = "warning"
    PROBLEM = "problem"


_OK, _WARN, _PROBLEM = Severity.OK, Severity.WARNING, Severity.PROBLEM


class Kind(enum.Enum):
    """Every kind of finding, with its severity and whether ``gateway start`` refuses it (value = the JSON name)."""

    severity: Severity
    refused_at_start: bool

    def __new__(cls, slug: str, severity: Severity, refused_at_start: bool = False) -> Kind:
        member = object.__new__(cls)
        member._value_ = slug
        member.severity = severity
        member.refused_at_start = refused_at_start
        return member

    # files
    FILE_MISSING = ("file_missing", _PROBLEM, True)
    FILE_UNREADABLE = ("file_unreadable", _PROBLEM, True)
    NOT_PEM = ("not_pem", _PROBLEM, True)
    KEY_UNUSABLE = ("key_unusable", _PROBLEM, True)
    NOT_USED = ("not_used", _WARN)
    START_REFUSES = ("start_refuses", _PROBLEM, True)
    # the bundle
    CERTIFICATE = ("certificate", _OK)
    ORDER_OK = ("order_ok", _OK)
    LEAF_NOT_FIRST = ("leaf_not_first", _PROBLEM, True)  # the key then matches a later certificate: start refuses
    OUT_OF_ORDER = ("out_of_order", _WARN)
    DUPLICATE = ("duplicate", _WARN)
    EXTRA_CERTIFICATE = ("extra_certificate", _WARN)
    ROOT_INCLUDED = ("root_included", _WARN)
    ISSUER_ABSENT = ("issuer_absent", _OK)
    LEAF_ONLY = ("leaf_only", _PROBLEM)
    INTERMEDIATE_MISSING = ("intermediate_missing", _PROBLEM)
    SELF_SIGNED = ("self_signed", _WARN)
    # the key
    KEY_MATCH = ("key_match", _OK)
    KEY_MISMATCH = ("key_mismatch", _PROBLEM, True)
    # validity
    VALIDITY_OK = ("validity_ok", _OK)
    EXPIRED = ("expired", _PROBLEM)
    NOT_YET_VALID = ("not_yet_valid", _PROBLEM)
    EXPIRING_SOON = ("expiring_soon", _WARN)
    # names
    NAMES = ("names", _OK)
    CN_ONLY = ("cn_only", _WARN)
    NAME_MATCH = ("name_match", _OK)
    NAME_MISMATCH = ("name_mismatch", _PROBLEM)
    # CA flags
    LEAF_IS_CA = ("leaf_is_ca", _WARN)
    ISSUER_NOT_CA = ("issuer_not_ca", _PROBLEM)
    # verification against --ca
    VERIFIED = ("verified", _OK)
    VERIFY_FAILED = ("verify_failed", _PROBLEM)
    DEPTH_NEEDED = ("depth_needed", _OK)
    # an upstream (doctor upstream)
    UPSTREAM_PROFILE = ("upstream_profile", _OK)
    UPSTREAM_NOTICE = ("upstream_notice", _PROBLEM)
    CONNECT_FAILED = ("connect_failed", _PROBLEM)
    UPSTREAM_TLS = ("upstream_tls", _OK)
    SERVER_CHAIN = ("server_chain", _OK)
    VERIFY_STEP = ("verify_step", _OK)
    UPSTREAM_OK = ("upstream_ok", _OK)
    UPSTREAM_REFUSED = ("upstream_refused", _PROBLEM)
    UPSTREAM_ANSWER = ("upstream_answer", _OK)
    UPSTREAM_NO_ANSWER = ("upstream_no_answer", _PROBLEM)
    CLIENT_CERT_REQUIRED = ("client_cert_required", _PROBLEM)
    # a running gateway, through its Admin API (doctor service, doctor sni)
    ADMIN_UNREACHABLE = ("admin_unreachable", _PROBLEM)
    NOT_FOUND = ("not_found", _PROBLEM)
    NOT_TLS = ("not_tls", _WARN)
    PROFILE_VALUE = ("profile_value", _OK)
    PROFILE_DIFFERS = ("profile_differs", _PROBLEM)
    UPSTREAM_TARGET = ("upstream_target", _OK)
    VERIFY_OFF = ("verify_off", _WARN)
    SERVED = ("served", _OK)
    SERVED_ERROR = ("served_error", _PROBLEM)
    CLIENT_CERT_REQUEST = ("client_cert_request", _OK)
    SERVED_MATCH = ("served_match", _OK)
    SERVED_MISMATCH = ("served_mismatch", _PROBLEM)


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing a diagnosis found.

    Attributes:
        kind: what it is (``Kind``); ``severity`` defaults to the kind's.
        message: the sentence, in plain English.
        fix: what to do about it (warnings and problems), or None.
        subject: what it is about when a diagnosis covers several inputs (``ssl_cert (/etc/certs/a.pem)``).
        facts: the numbers behind the words (``code``, ``depth``, ``index``...), for ``--json`` readers and tests.
        severity: the kind's severity unless a caller re-rates it (``for_check``).
    """

    kind: Kind
    message: str
    fix: str | None = None
    subject: str | None = None
    facts: Mapping[str, Any] = field(default_factory=dict)
    severity: Severity = Severity.OK

    @classmethod
    def of(cls, kind: Kind, message: str, fix: str | None = None, **facts: Any) -> Finding:
        """A finding with the kind's own severity."""
        return cls(kind, message, fix, None, facts, kind.severity)

    def about(self, subject: str) -> Finding:
        """The same finding, said of ``subject``."""
        return dataclasses.replace(self, subject=subject)

    def for_check(self) -> Finding:
        """As ``gateway check`` rates it: a problem that ``start`` accepts is a warning there."""
        if self.severity is Severity.PROBLEM and not self.kind.refused_at_start:
            return dataclasses.replace(self, severity=Severity.WARNING)
        return self

    def text(self) -> str:
        """The sentence with its subject and fix: ``ssl_cert (a.pem): the key does not match... Fix: ...``."""
        words = f"{self.subject}: {self.message}" if self.subject else self.message
        return f"{words} Fix: {self.fix}" if self.fix else words

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": self.kind.value, "severity": self.severity.value, "message": self.message}
        if self.fix:
            data["fix"] = self.fix
        if self.subject:
            data["subject"] = self.subject
        if self.facts:
            data["facts"] = dict(self.facts)
        return data


def exit_status(findings: Iterable[Finding]) -> int:
    """1 when any finding is a problem, else 0 (warnings alone pass)."""
    return EXIT_PROBLEM if any(f.severity is Severity.PROBLEM for f in findings) else EXIT_OK


def _count(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def summary(findings: Sequence[Finding]) -> str:
    """``2 problems, 1 warning`` (or ``no problems``)."""
    problems = sum(1 for f in findings if f.severity is Severity.PROBLEM)
    warnings = sum(1 for f in findings if f.severity is Severity.WARNING)
    head = _count(problems, "problem") if problems else "no problems"
    return f"{head}, {_count(warnings, 'warning')}"


def render_text(findings: Sequence[Finding]) -> list[str]:
    """One line per finding, its severity first (``problem  intermediate before leaf: ...``), then the summary."""
    lines = [f"{f.severity.value:<8} {f.text()}" for f in findings]
    lines.append(f"summary: {summary(findings)}")
    return lines


def render_json(findings: Sequence[Finding], **context: Any) -> str:
    """The findings as a JSON document: ``context`` (what was examined), ``findings``, counts and ``exit``."""
    document = dict(context)
    document["findings"] = [f.as_dict() for f in findings]
    document["problems"] = sum(1 for f in findings if f.severity is Severity.PROBLEM)
    document["warnings"] = sum(1 for f in findings if f.severity is Severity.WARNING)
    document["exit"] = exit_status(findings)
    return json.dumps(document, indent=2)
