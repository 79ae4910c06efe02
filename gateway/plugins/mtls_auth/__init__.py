"""The mtls-auth plugin: client-certificate authentication (see ``handler``)."""

from gateway.plugins.mtls_auth.handler import NAME, MtlsAuth, Outcome

__all__ = ["NAME", "MtlsAuth", "Outcome"]
