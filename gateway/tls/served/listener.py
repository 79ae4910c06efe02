"""What an ``ssl`` proxy listener takes from the settings: the TLS profile and the default certificates.

Kong reads ``ssl_cert``/``ssl_cert_key`` (or generates its default pair) when nginx is configured, that is at start
and on ``kong reload``; a handshake never reads a file. ``ServerTlsConfig.load`` is that step: the runtime calls it
at start and on SIGHUP, keeps the result, and hands it to every snapshot build, so Admin API writes (which rebuild
the certificate index many times) never touch the disk and a SIGHUP picks up rotated certificate files.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway.tls.served.defaults import PemPair, load_default_pairs
from gateway.tls.served.presets import TlsProfile, tls_profile

if TYPE_CHECKING:
    from gateway.settings import Listener, Settings
    from gateway.tls.served.defaults import _Log

__all__ = ["ServerTlsConfig", "ssl_listeners"]


def ssl_listeners(settings: Settings) -> tuple[Listener, ...]:
    """The ``proxy_listen`` and ``stream_listen`` entries flagged ``ssl`` (Kong's ``proxy_ssl_enabled`` or
    ``stream_proxy_ssl_enabled``: both serve the same certificates by the same SNI rules)."""
    return tuple(listener for listener in (*settings.proxy_listen, *settings.stream_listen) if listener.ssl)


@dataclass(frozen=True, slots=True)
class ServerTlsConfig:
    """The listener-wide TLS inputs of the certificate index, resolved once per settings load.

    Attributes:
        profile: protocols, ciphers, tickets and session timeout (``ciphers.tls_profile``).
        default_pairs: the certificates served without a matching SNI (``defaults.load_default_pairs``).
    """

    profile: TlsProfile
    default_pairs: tuple[PemPair, ...]

    @classmethod
    def load(cls, settings: Settings, log: _Log | None = None) -> ServerTlsConfig:
        """Resolve the profile and read (or generate, once, under the prefix) the default certificates.

        Raises:
            ConfigError: a bad ``ssl_*`` setting or an unreadable ``ssl_cert``/``ssl_cert_key`` entry.
        """
        return cls(tls_profile(settings), load_default_pairs(settings, log))
