"""The TLS engine: pyOpenSSL for both directions, with nginx/OpenSSL semantics.

- ``session``: sans-I/O ``TlsSession`` (memory BIOs); ``errors``, its errors; ``info``, its results for the layers
  above (``TlsInfo``); ``raw``, the handshake steps and the established data path (direct ``SSL_do_handshake``/
  ``SSL_read``/``SSL_write``/``BIO_*`` calls; the only module using pyOpenSSL internals).
- ``transport``: the asyncio glue (``TlsProtocol``, the raw-socket side), the server factory and
  ``open_tls_connection`` for upstreams; ``app_transport``: ``TlsTransport``, what the HTTP layer writes to.
- ``x509``: PEM, trust stores, chain verification, digests; ``verify_codes``: OpenSSL's verify codes and texts, the
  verify callback, the code a handshake reports; ``hostnames``: ``check_host`` (``X509_check_host``).
"""

from gateway.tls.engine.app_transport import TlsTransport
from gateway.tls.engine.errors import TlsError, TlsHandshakeError, TlsLocalError, TlsRemoteError
from gateway.tls.engine.hostnames import check_host
from gateway.tls.engine.info import TlsInfo
from gateway.tls.engine.session import TlsSession
from gateway.tls.engine.transport import TlsProtocol, create_tls_server_protocol, open_tls_connection
from gateway.tls.engine.verify_codes import (
    RECORD_AND_ACCEPT,
    RECORD_AND_ENFORCE,
    VerifyCode,
    VerifyRecorder,
    reported_verify_error,
    verify_error_text,
)
from gateway.tls.engine.x509 import ChainVerdict, TrustStore, verify_chain

__all__ = [
    "RECORD_AND_ACCEPT",
    "RECORD_AND_ENFORCE",
    "ChainVerdict",
    "TlsError",
    "TlsHandshakeError",
    "TlsInfo",
    "TlsLocalError",
    "TlsProtocol",
    "TlsRemoteError",
    "TlsSession",
    "TlsTransport",
    "TrustStore",
    "VerifyCode",
    "VerifyRecorder",
    "check_host",
    "create_tls_server_protocol",
    "open_tls_connection",
    "reported_verify_error",
    "verify_chain",
    "verify_error_text",
]
