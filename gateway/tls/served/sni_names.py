"""SNI names as Kong looks them up: the wildcard candidates of a client's SNI, and the entity name rules.

``produce_wild_snis`` gives the prefix and suffix wildcard names to try after the exact name (Kong's
``produce_wild_snis``); ``validate_sni_name`` is the ``wildcard_host`` message for a name, for the debug line
Kong writes about an invalid client SNI.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["CATCH_ALL_SNI", "produce_wild_snis", "validate_sni_name"]

CATCH_ALL_SNI: Final = "*"
"""The SNI entity name that catches every client SNI no other name matched (Kong's ``DEFAULT_SNI``)."""

_PREFIX_RE: Final = re.compile(r"([^.]+)(\.[^.]+\.\S+)", re.ASCII)
_SUFFIX_RE: Final = re.compile(r"([^.]+\.)([^.]+)$", re.ASCII)


def produce_wild_snis(sni: str) -> tuple[str | None, str | None]:
    """The prefix and suffix wildcard names to look up for ``sni`` (Kong's ``produce_wild_snis``).

    The prefix wildcard replaces the first label of a name of three labels or more (``www.domain.test`` ->
    ``*.domain.test``); the suffix wildcard replaces the last label (``domain.test`` -> ``domain.*``). A name that
    already starts (ends) with ``*`` is its own prefix (suffix) wildcard; a name with a ``*`` anywhere else has
    none. The regular expressions are Kong's PCRE ones, with ASCII classes as PCRE has without the ``u`` flag.

    Raises:
        TypeError: ``sni must be a string`` for anything but ``str``.
    """
    if not isinstance(sni, str):
        raise TypeError("sni must be a string")
    wild_idx = sni.find("*")
    prefix: str | None = None
    suffix: str | None = None
    if wild_idx == 0:
        prefix = sni
    elif wild_idx == -1:
        match = _PREFIX_RE.match(sni)
        if match is not None:
            prefix = "*" + match.group(2) + sni[match.end() :]
    if wild_idx != -1 and wild_idx == len(sni) - 1:
        suffix = sni
    elif wild_idx == -1:
        match = _SUFFIX_RE.search(sni)
        if match is not None:
            suffix = sni[: match.start()] + match.group(1) + "*" + sni[match.end() :]
    return prefix, suffix


def validate_sni_name(name: str) -> str | None:
    """Kong's ``wildcard_host`` validator message for ``name``, or None when it is a valid SNI entity name.

    The entity layer owns the rules (``gateway.entities.typedefs.validate_wildcard_host``); it is imported lazily
    because only the debug log of an invalid client SNI needs it.
    """
    from gateway.entities.typedefs import validate_wildcard_host

    return validate_wildcard_host(name)
