"""The mtls-auth plugin, Kong's layer 2 in one place: ``handshake`` asks for a client certificate in the TLS handshake
(per SNI, with the CA names to send), ``handler`` verifies it in the access phase (401s, consumers, revocation).
"""

from gateway.plugins.mtls_auth.handler import NAME, MtlsAuth, Outcome

__all__ = ["NAME", "MtlsAuth", "Outcome"]
