"""Kong's TLS presets (``ssl_cipher_suite``) turned into OpenSSL context settings.

Theory of operation
-------------------
Kong (``kong/conf_loader/constants.lua`` ``CIPHER_SUITES``, Mozilla's guidelines 5.7) maps ``ssl_cipher_suite``
onto nginx directives, and ``kong/conf_loader/parse.lua`` applies the preset *over* the user's values:

=============  ===========================  ==================  ====================  ==============
suite          protocols                    ciphers             prefer server order   DH parameters
=============  ===========================  ==================  ====================  ==============
modern         TLSv1.3                      nginx default       off                   none
intermediate   TLSv1.2 TLSv1.3              Mozilla interm.     off                   ffdhe2048
old            TLSv1 TLSv1.1 TLSv1.2 TLSv1.3 Mozilla old (*)    on                    ``ssl_dhparam``
fips           TLSv1.2                      ``...+FIPS...``     on                    none
custom         ``ssl_protocols``            ``ssl_ciphers``     ``ssl_prefer_...``    ``ssl_dhparam``
=============  ===========================  ==================  ====================  ==============

So ``ssl_protocols`` and ``ssl_prefer_server_ciphers`` only matter with ``custom`` (kong.conf.default says so:
"This value is ignored if ``ssl_cipher_suite`` is not ``custom``"). ``modern`` leaves ``ssl_ciphers`` unset, so
nginx's own default ``HIGH:!aNULL:!MD5`` applies (irrelevant with TLS 1.3 only).

(*) ``old`` also emits ``ssl_conf_command CipherString DEFAULT:@SECLEVEL=0`` (OpenSSL 3 refuses TLS 1.0/1.1 at
the default security level). nginx applies ``ssl_conf_command`` *after* ``ssl_ciphers`` (last step of
``ngx_http_ssl_merge_srv_conf``), so the effective cipher list of ``old`` is ``DEFAULT:@SECLEVEL=0``, not the
Mozilla list; we apply both in that order, which gives the same result.

What nginx does that we repeat (``ngx_ssl_create``): protocols as a contiguous min/max range plus ``SSL_OP_NO_*``
for holes, no compression, single DH/ECDH use, no anti-replay, no renegotiation (OpenSSL 3 already refuses
client-initiated renegotiation unless ``SSL_OP_ALLOW_CLIENT_RENEGOTIATION``), unexpected EOF treated as close,
buffers released when idle, and ``SSL_MODE_NO_AUTO_CHAIN`` so the served chain is exactly the PEM given (OpenSSL
would otherwise complete a chain from the context's trust store - with the root).

What nginx leaves at OpenSSL's defaults and so do we: TLS 1.3 ciphersuites, and the ECDH groups (nginx's
``ssl_ecdh_curve`` default is ``auto``; Kong never sets it, so the groups are OpenSSL's default list, not the
``X25519:prime256v1:secp384r1`` of Mozilla's intermediate profile).

Everything here runs when a snapshot or a listener is built, never per handshake.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from OpenSSL import SSL

from gateway.settings import ConfigError
from gateway.tls.pem_settings import read_pem_setting

if TYPE_CHECKING:
    from gateway.settings import Settings

__all__ = [
    "CIPHER_SUITES",
    "FFDHE_GROUPS",
    "NGINX_DEFAULT_CIPHERS",
    "CipherSuite",
    "TlsProfile",
    "apply_profile",
    "pem_file",
    "protocol_range",
    "tls_profile",
]


@dataclass(frozen=True, slots=True)
class CipherSuite:
    """One of Kong's presets, as in ``CIPHER_SUITES`` (``None`` ciphers: the ``ssl_ciphers`` line is omitted)."""

    protocols: str
    ciphers: str | None
    prefer_server_ciphers: bool
    dhparams: str | None = None
    conf_cipher_string: str | None = None


_MOZILLA_INTERMEDIATE = (
    "ECDHE-ECDSA-AES128-GCM-SHA256:"
    "ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:"
    "ECDHE-RSA-CHACHA20-POLY1305:"
    "DHE-RSA-AES128-GCM-SHA256:"
    "DHE-RSA-AES256-GCM-SHA384:"
    "DHE-RSA-CHACHA20-POLY1305"
)

_MOZILLA_OLD = (
    _MOZILLA_INTERMEDIATE + ":"
    "ECDHE-ECDSA-AES128-SHA256:"
    "ECDHE-RSA-AES128-SHA256:"
    "ECDHE-ECDSA-AES128-SHA:"
    "ECDHE-RSA-AES128-SHA:"
    "ECDHE-ECDSA-AES256-SHA384:"
    "ECDHE-RSA-AES256-SHA384:"
    "ECDHE-ECDSA-AES256-SHA:"
    "ECDHE-RSA-AES256-SHA:"
    "DHE-RSA-AES128-SHA256:"
    "DHE-RSA-AES256-SHA256:"
    "AES128-GCM-SHA256:"
    "AES256-GCM-SHA384:"
    "AES128-SHA256:"
    "AES256-SHA256:"
    "AES128-SHA:"
    "AES256-SHA:"
    "DES-CBC3-SHA"
)

NGINX_DEFAULT_CIPHERS: Final = "HIGH:!aNULL:!MD5"
"""nginx's ``ssl_ciphers`` default (``NGX_DEFAULT_CIPHERS``), used when Kong omits the directive."""

CIPHER_SUITES: Final[dict[str, CipherSuite]] = {
    "modern": CipherSuite("TLSv1.3", None, prefer_server_ciphers=False),
    "intermediate": CipherSuite(
        "TLSv1.2 TLSv1.3", _MOZILLA_INTERMEDIATE, prefer_server_ciphers=False, dhparams="ffdhe2048"
    ),
    "old": CipherSuite(
        "TLSv1 TLSv1.1 TLSv1.2 TLSv1.3",
        _MOZILLA_OLD,
        prefer_server_ciphers=True,
        conf_cipher_string="DEFAULT:@SECLEVEL=0",
    ),
    "fips": CipherSuite("TLSv1.2", "TLSv1.2+FIPS:kRSA+FIPS:!eNULL:!aNULL", prefer_server_ciphers=True),
}
"""Kong's presets by name (``custom`` is built from the settings)."""

_PROTOCOL_VERSIONS: Final[dict[str, int]] = {
    "TLSv1": SSL.TLS1_VERSION,
    "TLSv1.1": SSL.TLS1_1_VERSION,
    "TLSv1.2": SSL.TLS1_2_VERSION,
    "TLSv1.3": SSL.TLS1_3_VERSION,
}
_ORDERED_VERSIONS: Final = (SSL.TLS1_VERSION, SSL.TLS1_1_VERSION, SSL.TLS1_2_VERSION, SSL.TLS1_3_VERSION)
_NO_VERSION_OPTION: Final[dict[int, int]] = {
    SSL.TLS1_VERSION: SSL.OP_NO_TLSv1,
    SSL.TLS1_1_VERSION: SSL.OP_NO_TLSv1_1,
    SSL.TLS1_2_VERSION: SSL.OP_NO_TLSv1_2,
    SSL.TLS1_3_VERSION: SSL.OP_NO_TLSv1_3,
}

# OpenSSL option and mode bits pyOpenSSL or its type stubs do not name (values from OpenSSL 3's ssl.h; stable ABI).
_OP_IGNORE_UNEXPECTED_EOF: Final = 1 << 7
_OP_NO_RENEGOTIATION: Final = 1 << 30
_OP_NO_ANTI_REPLAY: Final = 1 << 24
_MODE_NO_AUTO_CHAIN: Final = 0x00000008

_SESSION_ID_CONTEXT: Final = b"gateway-proxy"
"""One session id context for every certificate context: sessions belong to the listener, as in Kong (one
nginx ``server`` block; the certificate is swapped on the same SSL object), whatever certificate served them."""


@dataclass(frozen=True, slots=True)
class TlsProfile:
    """The server-side TLS settings every context of a listener gets, resolved from the settings once.

    Attributes:
        suite: the ``ssl_cipher_suite`` name.
        protocols: enabled versions, as written in kong.conf (``("TLSv1.2", "TLSv1.3")``).
        ciphers: the ``ssl_ciphers`` string applied with ``SSL_CTX_set_cipher_list`` (TLS <= 1.2 only).
        conf_cipher_string: a later ``CipherString`` conf command (``old``), which replaces ``ciphers``.
        prefer_server_ciphers: ``SSL_OP_CIPHER_SERVER_PREFERENCE``.
        dhparam: PEM DH parameters for DHE suites, or ``None`` (DHE then unavailable, as in nginx).
        session_tickets: ``ssl_session_tickets``; off sets ``SSL_OP_NO_TICKET``.
        session_timeout: ``ssl_session_timeout`` in seconds.
        session_cache: ``ssl_session_cache_size`` is not 0. Beyond Kong (where 0 is not a valid size): 0 turns the
            server-side session cache off, as nginx's ``ssl_session_cache off``; with tickets off as well, every
            handshake is a full one (how the benchmarks measure handshakes).
    """

    suite: str = "intermediate"
    protocols: tuple[str, ...] = ("TLSv1.2", "TLSv1.3")
    ciphers: str = _MOZILLA_INTERMEDIATE
    conf_cipher_string: str | None = None
    prefer_server_ciphers: bool = False
    dhparam: bytes | None = None
    session_tickets: bool = True
    session_timeout: int = 86400
    session_cache: bool = True

    @classmethod
    def kong_default(cls) -> TlsProfile:
        """Kong's defaults (``intermediate``, tickets on, ``1d``), for callers without settings (tests)."""
        return cls(dhparam=ffdhe_pem("ffdhe2048"))


def protocol_range(protocols: tuple[str, ...] | list[str]) -> tuple[int, int, int]:
    """``(min_version, max_version, extra_options)`` for nginx's ``ssl_protocols`` list.

    nginx disables each unlisted version with ``SSL_OP_NO_*``; a min/max range plus ``SSL_OP_NO_*`` for the holes
    inside it (``TLSv1 TLSv1.3``) enables exactly the same set.

    Raises:
        ConfigError: an unknown name or an empty list.
    """
    versions = set()
    for name in protocols:
        if name not in _PROTOCOL_VERSIONS:
            raise ConfigError(
                f"ssl_protocols has an invalid value: '{name}' (accepted: {', '.join(_PROTOCOL_VERSIONS)})"
            )
        versions.add(_PROTOCOL_VERSIONS[name])
    if not versions:
        raise ConfigError("ssl_protocols must name at least one protocol")
    low, high = min(versions), max(versions)
    holes = 0
    for version in _ORDERED_VERSIONS:
        if low < version < high and version not in versions:
            holes |= _NO_VERSION_OPTION[version]
    return low, high, holes


def tls_profile(settings: Settings) -> TlsProfile:
    """Resolve ``ssl_cipher_suite`` and friends the way Kong's conf loader does (the preset wins over the rest).

    Raises:
        ConfigError: an unknown suite, ``custom`` without ``ssl_ciphers``, or an unreadable ``ssl_dhparam``.
    """
    name = settings.ssl_cipher_suite
    if name == "custom":
        if not settings.ssl_ciphers:
            raise ConfigError("ssl_ciphers must be set when ssl_cipher_suite = custom")
        protocols = tuple(settings.ssl_protocols.split())
        ciphers = settings.ssl_ciphers
        conf_cipher_string = None
        prefer = settings.ssl_prefer_server_ciphers
        dhparam = _read_dhparam(settings.ssl_dhparam) if settings.ssl_dhparam else None
    else:
        suite = CIPHER_SUITES.get(name)
        if suite is None:
            raise ConfigError(f"Undefined cipher suite {name}")
        protocols = tuple(suite.protocols.split())
        ciphers = suite.ciphers or NGINX_DEFAULT_CIPHERS
        conf_cipher_string = suite.conf_cipher_string
        prefer = suite.prefer_server_ciphers
        if name == "old":  # Kong keeps the user's ssl_dhparam only for "old"
            dhparam = _read_dhparam(settings.ssl_dhparam) if settings.ssl_dhparam else None
        else:
            dhparam = ffdhe_pem(suite.dhparams) if suite.dhparams else None
    protocol_range(protocols)  # validate now, not at the first context
    return TlsProfile(
        suite=name,
        protocols=protocols,
        ciphers=ciphers,
        conf_cipher_string=conf_cipher_string,
        prefer_server_ciphers=prefer,
        dhparam=dhparam,
        session_tickets=settings.ssl_session_tickets,
        session_timeout=settings.ssl_session_timeout,
        session_cache=settings.ssl_session_cache_size > 0,
    )


def _read_dhparam(value: str) -> bytes:
    """``ssl_dhparam``: a predefined group name, else a path, base64 or PEM content (Kong's order and message)."""
    if value in FFDHE_GROUPS:
        return ffdhe_pem(value)
    return read_pem_setting("ssl_dhparam", value, "certificate")


def apply_profile(ctx: SSL.Context, profile: TlsProfile) -> None:
    """Configure a server context as ``ngx_ssl_create`` + the ``ssl_*`` directives would.

    Every context a connection may be switched to gets the same settings: after ``SSL_set_SSL_CTX`` OpenSSL takes
    the cipher list, security level, DH parameters and ALPN callback from the *new* context, while versions,
    options, modes, tickets and the session cache stay those of the listener's base context.

    Raises:
        ConfigError: OpenSSL rejected the cipher string or the DH parameters.
    """
    low, high, holes = protocol_range(profile.protocols)
    ctx.set_min_proto_version(low)
    ctx.set_max_proto_version(high)
    options = (
        holes
        | SSL.OP_NO_COMPRESSION
        | SSL.OP_SINGLE_DH_USE
        | SSL.OP_SINGLE_ECDH_USE
        | SSL.OP_DONT_INSERT_EMPTY_FRAGMENTS
        | _OP_NO_RENEGOTIATION
        | _OP_IGNORE_UNEXPECTED_EOF
        | _OP_NO_ANTI_REPLAY
    )
    if profile.prefer_server_ciphers:
        options |= SSL.OP_CIPHER_SERVER_PREFERENCE
    if not profile.session_tickets:
        options |= SSL.OP_NO_TICKET
    ctx.set_options(options)
    ctx.set_mode(SSL.MODE_RELEASE_BUFFERS | _MODE_NO_AUTO_CHAIN)
    for cipher_string in (profile.ciphers, profile.conf_cipher_string):
        if cipher_string is None:
            continue
        try:
            ctx.set_cipher_list(cipher_string.encode("ascii"))
        except (SSL.Error, UnicodeEncodeError) as exc:
            raise ConfigError(f'SSL_CTX_set_cipher_list("{cipher_string}") failed: {exc}') from None
    if profile.dhparam is not None:
        with pem_file(profile.dhparam) as path:
            try:
                ctx.load_tmp_dh(path)
            except SSL.Error as exc:
                raise ConfigError(f"ssl_dhparam: failed loading DH parameters: {exc}") from None
    ctx.set_session_id(_SESSION_ID_CONTEXT)
    ctx.set_session_cache_mode(SSL.SESS_CACHE_SERVER if profile.session_cache else SSL.SESS_CACHE_OFF)
    ctx.set_timeout(profile.session_timeout)


@contextmanager
def pem_file(data: bytes) -> Iterator[str]:
    """A path OpenSSL can open that holds ``data``, for APIs pyOpenSSL only offers on files.

    Linux: an anonymous memory file (``memfd_create``) reached through ``/proc/self/fd``, so keys never touch a
    disk. Elsewhere: a private temporary file (mode 0600), removed on exit.
    """
    memfd_create = getattr(os, "memfd_create", None)
    if memfd_create is not None and os.path.isdir("/proc/self/fd"):
        fd = memfd_create("gateway-pem", getattr(os, "MFD_CLOEXEC", 0))
        try:
            os.write(fd, data)
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)
        return
    handle, path = tempfile.mkstemp(prefix="gateway-pem-")
    try:
        os.write(handle, data)
        os.close(handle)
        yield path
    finally:
        os.unlink(path)


def ffdhe_pem(name: str) -> bytes:
    """The RFC 7919 group ``name`` as PEM DH parameters (what Kong writes to ``<prefix>/ssl/<name>.pem``)."""
    body = FFDHE_GROUPS[name]
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return ("-----BEGIN DH PARAMETERS-----\n" + "\n".join(lines) + "\n-----END DH PARAMETERS-----\n").encode("ascii")


FFDHE_GROUPS: Final[dict[str, str]] = {
    "ffdhe2048": (
        "MIIBCAKCAQEA//////////+t+FRYortKmq/cViAnPTzx2LnFg84tNpWp4TZBFGQz+8yTnc4kmz75fS/jY2MMddj2gbICrsRh"
        "etPfHtXV/WVhJDP1H18GbtCFY2VVPe0a87VXE15/V8k1mE8McODmi3fipona8+/och3xWKE2rec1MKzKT0g6eXq8CrGCsyT7"
        "YdEIqUuyyOP7uWrat2DX9GgdT0Kj3jlN9K5W7edjcrsZCwenyO4KbXCeAvzhzffi7MA0BM0oNC9hkXL+nOmFg/+OTxIy7vKB"
        "g8P+OxtMb61zO7X8vC7CIAXFjvGDfRaDssbzSibBsu/6iGtCOGEoXJf//////////wIBAg=="
    ),
    "ffdhe3072": (
        "MIIBiAKCAYEA//////////+t+FRYortKmq/cViAnPTzx2LnFg84tNpWp4TZBFGQz+8yTnc4kmz75fS/jY2MMddj2gbICrsRh"
        "etPfHtXV/WVhJDP1H18GbtCFY2VVPe0a87VXE15/V8k1mE8McODmi3fipona8+/och3xWKE2rec1MKzKT0g6eXq8CrGCsyT7"
        "YdEIqUuyyOP7uWrat2DX9GgdT0Kj3jlN9K5W7edjcrsZCwenyO4KbXCeAvzhzffi7MA0BM0oNC9hkXL+nOmFg/+OTxIy7vKB"
        "g8P+OxtMb61zO7X8vC7CIAXFjvGDfRaDssbzSibBsu/6iGtCOGEfz9zeNVs7ZRkDW7w09N75nAI4YbRvydbmyQd62R0mkff3"
        "7lmMsPrBhtkcrv4TCYUTknC0EwyTvEN5RPT9RFLi103TZPLiHnH1S/9croKrnJ32nuhtK8UiNjoNq8Uhl5sN6todv5pC1cRI"
        "Tgq80Gv6U93vPBsg7j/VnXwl5B0rZsYuN///////////AgEC"
    ),
    "ffdhe4096": (
        "MIICCAKCAgEA//////////+t+FRYortKmq/cViAnPTzx2LnFg84tNpWp4TZBFGQz+8yTnc4kmz75fS/jY2MMddj2gbICrsRh"
        "etPfHtXV/WVhJDP1H18GbtCFY2VVPe0a87VXE15/V8k1mE8McODmi3fipona8+/och3xWKE2rec1MKzKT0g6eXq8CrGCsyT7"
        "YdEIqUuyyOP7uWrat2DX9GgdT0Kj3jlN9K5W7edjcrsZCwenyO4KbXCeAvzhzffi7MA0BM0oNC9hkXL+nOmFg/+OTxIy7vKB"
        "g8P+OxtMb61zO7X8vC7CIAXFjvGDfRaDssbzSibBsu/6iGtCOGEfz9zeNVs7ZRkDW7w09N75nAI4YbRvydbmyQd62R0mkff3"
        "7lmMsPrBhtkcrv4TCYUTknC0EwyTvEN5RPT9RFLi103TZPLiHnH1S/9croKrnJ32nuhtK8UiNjoNq8Uhl5sN6todv5pC1cRI"
        "Tgq80Gv6U93vPBsg7j/VnXwl5B0rZp4e8W5vUsMWTfT7eTDp5OWIV7asfV9C1p9tGHdjzx1VA0AEh/VbpX4xzHpxNciG77Qx"
        "iu1qHgEtnmgyqQdgCpGBMMRtx3j5ca0AOAkpmaMzy4t6Gh25PXFAADwqTs6p+Y0KzAqCkc3OyX3Pjsm1Wn+IpGtNtahR9EGC"
        "4caKAH5eZV9q//////////8CAQI="
    ),
    "ffdhe6144": (
        "MIIDCAKCAwEA//////////+t+FRYortKmq/cViAnPTzx2LnFg84tNpWp4TZBFGQz+8yTnc4kmz75fS/jY2MMddj2gbICrsRh"
        "etPfHtXV/WVhJDP1H18GbtCFY2VVPe0a87VXE15/V8k1mE8McODmi3fipona8+/och3xWKE2rec1MKzKT0g6eXq8CrGCsyT7"
        "YdEIqUuyyOP7uWrat2DX9GgdT0Kj3jlN9K5W7edjcrsZCwenyO4KbXCeAvzhzffi7MA0BM0oNC9hkXL+nOmFg/+OTxIy7vKB"
        "g8P+OxtMb61zO7X8vC7CIAXFjvGDfRaDssbzSibBsu/6iGtCOGEfz9zeNVs7ZRkDW7w09N75nAI4YbRvydbmyQd62R0mkff3"
        "7lmMsPrBhtkcrv4TCYUTknC0EwyTvEN5RPT9RFLi103TZPLiHnH1S/9croKrnJ32nuhtK8UiNjoNq8Uhl5sN6todv5pC1cRI"
        "Tgq80Gv6U93vPBsg7j/VnXwl5B0rZp4e8W5vUsMWTfT7eTDp5OWIV7asfV9C1p9tGHdjzx1VA0AEh/VbpX4xzHpxNciG77Qx"
        "iu1qHgEtnmgyqQdgCpGBMMRtx3j5ca0AOAkpmaMzy4t6Gh25PXFAADwqTs6p+Y0KzAqCkc3OyX3Pjsm1Wn+IpGtNtahR9EGC"
        "4caKAH5eDdkCC/1ktkUDbHpOZ30sOFMqOiO6RELK9T6mO7RUMpt2JMiRe91kscD9TLOOjDNMcBw6za0GV/zP7HGbH1w+TkYE"
        "HziBR/tM/bR3pSRx96mpaRC4VTIu22NA2KAO8JI1BRHjCr7B//njom5/sp+MGDAjw1h+ONoAd9m0dj5OS5Syu8GUxmUed8r5"
        "ku6qwCMqKBv2s6c5wSJhFoIK6NtYR6Z8vvnJCRtGLVOM1ysDdGrnf15iKSwxFWKoRlBdyC24VDOK5J9SNclbkReMzy3Vys70"
        "A+ydGBDGJysEWztx+dxrgNY/3UqOmtseaWKmlSbUMWHBpB1XDXk42tSkDjKc0OQOZf//////////AgEC"
    ),
    "ffdhe8192": (
        "MIIECAKCBAEA//////////+t+FRYortKmq/cViAnPTzx2LnFg84tNpWp4TZBFGQz+8yTnc4kmz75fS/jY2MMddj2gbICrsRh"
        "etPfHtXV/WVhJDP1H18GbtCFY2VVPe0a87VXE15/V8k1mE8McODmi3fipona8+/och3xWKE2rec1MKzKT0g6eXq8CrGCsyT7"
        "YdEIqUuyyOP7uWrat2DX9GgdT0Kj3jlN9K5W7edjcrsZCwenyO4KbXCeAvzhzffi7MA0BM0oNC9hkXL+nOmFg/+OTxIy7vKB"
        "g8P+OxtMb61zO7X8vC7CIAXFjvGDfRaDssbzSibBsu/6iGtCOGEfz9zeNVs7ZRkDW7w09N75nAI4YbRvydbmyQd62R0mkff3"
        "7lmMsPrBhtkcrv4TCYUTknC0EwyTvEN5RPT9RFLi103TZPLiHnH1S/9croKrnJ32nuhtK8UiNjoNq8Uhl5sN6todv5pC1cRI"
        "Tgq80Gv6U93vPBsg7j/VnXwl5B0rZp4e8W5vUsMWTfT7eTDp5OWIV7asfV9C1p9tGHdjzx1VA0AEh/VbpX4xzHpxNciG77Qx"
        "iu1qHgEtnmgyqQdgCpGBMMRtx3j5ca0AOAkpmaMzy4t6Gh25PXFAADwqTs6p+Y0KzAqCkc3OyX3Pjsm1Wn+IpGtNtahR9EGC"
        "4caKAH5eDdkCC/1ktkUDbHpOZ30sOFMqOiO6RELK9T6mO7RUMpt2JMiRe91kscD9TLOOjDNMcBw6za0GV/zP7HGbH1w+TkYE"
        "HziBR/tM/bR3pSRx96mpaRC4VTIu22NA2KAO8JI1BRHjCr7B//njom5/sp+MGDAjw1h+ONoAd9m0dj5OS5Syu8GUxmUed8r5"
        "ku6qwCMqKBv2s6c5wSJhFoIK6NtYR6Z8vvnJCRtGLVOM1ysDdGrnf15iKSwxFWKoRlBdyC24VDOK5J9SNclbkReMzy3Vys70"
        "A+ydGBDGJysEWztx+dxrgNY/3UqOmtseaWKmlSbUMWHBpB1XDXk42tSkDjKcz/RqqjatAEz2AMg4HkJaMdlRrmT9sj/OyVCd"
        "Q2h/62nt0cxeC4zDvfZLEO+GtjFCo6uIKVVbL3R8kyZlyywPHMAb1wIpOIg50q8F5FRQSseLdYKCKEbAujXDX1xZFgzARv2C"
        "UVQfxoychrAiu3CZh2pGDnRRqKkxCXA/7hwhfmw4JuUsUappHg5CPPyZ6eMWUMEhe2JIFs2tmpX51bgBlIjZwKCh/jB1pXfi"
        "MYP4HUo/L6RXHvyM4LqKT+i2hV3+crCmbt7S+6v75Yow+vq+HF1xqH4vdB74wf6G/qa7/eUwZ38Nl9EdSfeoRD0IIuUGqfRh"
        "TgEeKpSDj/iM1oyLt8XGQkz//////////wIBAg=="
    ),
}
"""The RFC 7919 finite-field groups Kong accepts by name in ``ssl_dhparam`` (base64 of the DER parameters, as
``openssl genpkey -genparam -algorithm DH -pkeyopt group:<name>`` prints them)."""
