"""Session-ticket keys shared by every worker process, the way nginx shares them: by forking.

OpenSSL encrypts session tickets with keys it draws at random in ``SSL_CTX_new`` and keeps in the context a
connection was *created* from (the SSL's ``session_ctx``, unchanged when the SNI callback switches it to a
certificate's context). A ticket issued by one process therefore resumes in another only if both created their
listener's base context from the same ``SSL_CTX``. nginx gets that for free: the master creates the contexts and
forks the workers. pyOpenSSL has no ``SSL_CTX_set_tlsext_ticket_keys`` to copy keys between processes, so the
gateway does what nginx does, with one indirection: the zygote (``gateway.runtime.zygote``) calls ``prepare`` -
one *blank* ``SSL.Context`` per ``ssl`` listener, nothing configured yet - and forks every worker; each worker's
``TlsListener`` configures the blank context it inherited (``take``) as its base context. The keys are random per
generation (a new one on SIGHUP, as an nginx reload) and identical in every worker of a generation.

In a single-process gateway nothing is prepared and ``take`` returns None: the listener creates its own context.
"""

from __future__ import annotations

from OpenSSL import SSL

__all__ = ["prepare", "prepared", "take"]

_blank: dict[int, SSL.Context] = {}


def prepare(count: int) -> None:
    """Create ``count`` blank server contexts (fresh ticket keys), replacing any not taken yet."""
    _blank.clear()
    for position in range(count):
        _blank[position] = SSL.Context(SSL.TLS_SERVER_METHOD)


def prepared() -> int:
    """How many blank contexts are waiting to be taken."""
    return len(_blank)


def take(position: int) -> SSL.Context | None:
    """The blank context of the ``position``-th ``ssl`` listener, once; None if there is none."""
    return _blank.pop(position, None)
