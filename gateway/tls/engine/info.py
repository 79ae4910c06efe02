"""What the layers above may know of an established TLS connection: ``TlsInfo``, plain fields, no pyOpenSSL.

The session fills one in when its handshake completes; it refers to the ``SSL`` object (for the values read on
demand), never to the session, so it adds no reference cycle and stays readable after ``TlsSession.release``.
"""

from __future__ import annotations

from typing import Final

from cryptography import x509 as cx509
from OpenSSL import SSL

__all__ = ["TlsInfo", "peer_chain_of"]

#: a negotiated value not read from OpenSSL yet (None is a value: no ALPN agreed)
_UNREAD: Final = "(unread)"


class TlsInfo:
    """What the layers above may know about an established TLS connection (``get_extra_info("tls")``).

    Plain fields; ``alpn``, ``cipher``, ``version`` and ``peer_chain`` are each read from OpenSSL on its first access
    only (the proxy path reads ``version`` for the handshake counter and ``alpn`` on an ``http2`` listener, nothing
    else; each pyOpenSSL getter is a few microseconds of Python; the values cannot change once the handshake is
    complete, so reading them later gives the same answer). It holds the ``SSL`` object for those reads, not the
    ``TlsSession`` (see "Releasing" in the module docstring); ``close_notify_received`` is the one field that may
    change later, set by the session.
    """

    __slots__ = (
        "_alpn",
        "_cipher",
        "_conn",
        "_peer_chain",
        "_version",
        "client_cert_request",
        "close_notify_received",
        "server_certificate",
        "server_side",
        "session_reused",
        "sni",
        "verify_code",
        "verify_depth",
        "verify_errors",
    )

    def __init__(
        self,
        conn: SSL.Connection,
        server_side: bool,
        sni: str | None,
        verify_errors: tuple[tuple[int, int], ...],
        verify_code: int,
        verify_depth: int,
        session_reused: bool = False,
        close_notify_received: bool = False,
        server_certificate: object | None = None,
        client_cert_request: object | None = None,
    ) -> None:
        self._conn = conn
        self.server_side = server_side
        self.sni = sni
        self.verify_errors = verify_errors
        self.verify_code = verify_code
        self.verify_depth = verify_depth
        self.session_reused = session_reused
        #: whether the peer ended with a close_notify (False for a plain TCP close); set by the session
        self.close_notify_received = close_notify_received
        #: server side: what the SNI callback chose (``tls.served.certificates.CertificateEntry``), and the
        #: certificate-phase hook's client-certificate request (``plugins.mtls_auth.handshake.SniRequest``) or None;
        #: references kept for the decision records (``tls.trace``), never read on the proxy path
        self.server_certificate = server_certificate
        self.client_cert_request = client_cert_request
        self._alpn: str | None = _UNREAD
        self._cipher: str | None = _UNREAD
        self._version: str | None = _UNREAD
        self._peer_chain: list[cx509.Certificate] | None = None

    @property
    def alpn(self) -> str | None:
        """The negotiated ALPN protocol, if any."""
        alpn = self._alpn
        if alpn is _UNREAD:
            raw = self._conn.get_alpn_proto_negotiated()
            alpn = self._alpn = raw.decode("ascii", "replace") if raw else None
        return alpn

    @property
    def cipher(self) -> str | None:
        """OpenSSL's name of the negotiated cipher suite."""
        cipher = self._cipher
        if cipher is _UNREAD:
            cipher = self._cipher = self._conn.get_cipher_name()
        return cipher

    @property
    def version(self) -> str | None:
        """The protocol version (``TLSv1.3``, ``TLSv1.2``)."""
        version = self._version
        if version is _UNREAD:
            version = self._version = self._conn.get_protocol_version_name()
        return version

    @property
    def peer_chain(self) -> list[cx509.Certificate]:
        """The certificates the peer sent, leaf first (empty when it sent none), converted once, on demand."""
        chain = self._peer_chain
        if chain is None:
            chain = self._peer_chain = peer_chain_of(self._conn, self.server_side)
        return chain

    @property
    def local_certificate(self) -> cx509.Certificate | None:
        """The certificate this side presented (of an RSA + ECDSA pair, the one OpenSSL chose); read on demand."""
        cert = self._conn.get_certificate()
        return cert.to_cryptography() if cert is not None else None

    @property
    def peer_certificate(self) -> cx509.Certificate | None:
        """The peer's leaf certificate, if it sent one."""
        chain = self.peer_chain
        return chain[0] if chain else None

    def __repr__(self) -> str:
        return (
            f"TlsInfo(sni={self.sni!r}, alpn={self.alpn!r}, version={self.version!r}, cipher={self.cipher!r}, "
            f"verify_code={self.verify_code}, session_reused={self.session_reused})"
        )


def peer_chain_of(conn: SSL.Connection, server_side: bool) -> list[cx509.Certificate]:
    """The chain the peer sent, leaf first, as ``cryptography`` certificates.

    OpenSSL's server side leaves the client's leaf out of ``SSL_get_peer_cert_chain``; it is put back in front here
    so that both sides read the same thing.
    """
    certs = [c.to_cryptography() for c in conn.get_peer_cert_chain() or ()]
    if server_side:
        leaf = conn.get_peer_certificate()
        if leaf is not None:
            certs.insert(0, leaf.to_cryptography())
    elif not certs:
        leaf = conn.get_peer_certificate()
        if leaf is not None:
            certs.append(leaf.to_cryptography())
    return certs
