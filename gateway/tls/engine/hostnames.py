"""The upstream host name check, with ``X509_check_host(cert, name, len, 0, NULL)`` semantics, as nginx calls it.

Also ``is_ip_literal``: nginx sends no SNI for an IP literal, though the host check still runs for it.
"""

from __future__ import annotations

import ipaddress

from cryptography import x509
from cryptography.x509.oid import NameOID

__all__ = ["check_host", "is_ip_literal"]


_ALNUM = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_LABEL_START, _LABEL_IDNA, _LABEL_HYPHEN = 1, 2, 4


def _equal_nocase(pattern: bytes, subject: bytes) -> bool:
    # ASCII-only case folding, like OpenSSL; a NUL in the pattern never matches.
    return len(pattern) == len(subject) and b"\0" not in pattern and pattern.lower() == subject.lower()


def _valid_star(p: bytes) -> int:
    """Index of the one legal ``*`` in a pattern, or -1 (OpenSSL ``valid_star`` without partial-wildcard bans)."""
    star = -1
    state = _LABEL_START
    dots = 0
    n = len(p)
    for i, c in enumerate(p):
        if c == 0x2A:  # '*'
            atstart = state & _LABEL_START
            atend = i == n - 1 or p[i + 1] == 0x2E
            if star >= 0 or state & _LABEL_IDNA or dots:
                return -1
            if not atstart and not atend:
                return -1
            star = i
            state &= ~_LABEL_START
        elif c in _ALNUM:
            if state & _LABEL_START and n - i >= 4 and p[i : i + 4].lower() == b"xn--":
                state |= _LABEL_IDNA
            state &= ~(_LABEL_HYPHEN | _LABEL_START)
        elif c == 0x2E:  # '.'
            if state & (_LABEL_HYPHEN | _LABEL_START):
                return -1
            state = _LABEL_START
            dots += 1
        elif c == 0x2D:  # '-'
            if state & _LABEL_START:
                return -1
            state |= _LABEL_HYPHEN
        else:
            return -1
    if state & (_LABEL_START | _LABEL_HYPHEN) or dots < 2:
        return -1
    return star


def _wildcard_match(prefix: bytes, suffix: bytes, subject: bytes) -> bool:
    if len(subject) < len(prefix) + len(suffix):
        return False
    if not _equal_nocase(prefix, subject[: len(prefix)]):
        return False
    end = len(subject) - len(suffix)
    if not _equal_nocase(subject[end:], suffix):
        return False
    matched = subject[len(prefix) : end]
    allow_idna = False
    if not prefix and suffix[:1] == b".":
        # A whole-label wildcard must match at least one character.
        if not matched:
            return False
        allow_idna = True
    if not allow_idna and subject[:4].lower() == b"xn--":
        return False
    if matched == b"*":
        return True
    return all(c in _ALNUM or c == 0x2D for c in matched)


def _equal_wildcard(pattern: bytes, subject: bytes) -> bool:
    star = -1 if (len(subject) > 1 and subject[:1] == b".") else _valid_star(pattern)
    if star < 0:
        return _equal_nocase(pattern, subject)
    return _wildcard_match(pattern[:star], pattern[star + 1 :], subject)


def check_host(cert: x509.Certificate, name: str) -> bool:
    """Whether ``cert`` is valid for ``name``, with ``X509_check_host(cert, name, len, 0, NULL)`` semantics.

    - DNS SANs are compared case-insensitively (ASCII only); a ``*`` is allowed in the leftmost label only,
      either as the whole label (matching exactly one non-empty label) or at its start or end (``f*.x.test``);
      the pattern needs at least two dots after the star and no ``xn--`` label holds a star.
    - The subject CN is consulted only when the certificate has no DNS SAN (iPAddress or e-mail SANs do not
      count), every CN is tried, with the same rules.
    - An IP literal is *not* special: nginx's ``ngx_ssl_check_host`` passes the upstream name to
      ``X509_check_host`` whatever it is, so ``127.0.0.1`` is compared as text with DNS SANs and the CN, and
      iPAddress SANs are never consulted. Checked against ``openssl x509 -checkhost`` (the same library call)
      in the tests.

    Args:
        cert: the leaf certificate.
        name: the host name without port, exactly as it will be sent as SNI / Host.
    """
    if not name:
        return False
    subject = name.encode("utf-8")
    if b"\0" in subject:
        return False
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        dns_names: list[str] = []
    else:
        dns_names = san.get_values_for_type(x509.DNSName)
    if dns_names:
        return any(_equal_wildcard(d.encode("utf-8", "replace"), subject) for d in dns_names)
    for attr in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME):
        value = attr.value if isinstance(attr.value, str) else attr.value.decode("utf-8", "replace")
        if _equal_wildcard(value.encode("utf-8"), subject):
            return True
    return False


def is_ip_literal(name: str) -> bool:
    """Whether a host is an IP literal: nginx sends no SNI for those (the host check still runs, see above)."""
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    return True
