"""Server-side certificate selection: SNI -> certificate, as Kong's ``kong/runloop/certificate.lua`` does it.

Theory of operation
-------------------
Everything expensive happens once, when the runtime builds a snapshot: ``CertificateIndex.build`` parses every
certificate row with OpenSSL and compiles one ``SSL.Context`` per certificate (chain + key, plus the alternative
pair on the *same* context so OpenSSL picks RSA or ECDSA from the client's signature algorithms), then maps every
SNI name to a precompiled ``CertificateEntry``. A handshake costs the servername callback a few dict lookups and
one ``SSL_set_SSL_CTX`` (``make_sni_callback``); no PEM is parsed and no context is built on that path.

Selection order (``find_certificate``), for the SNI exactly as the client sent it (no case folding):

1. the exact name; 2. the prefix wildcard (``a.b.c`` -> ``*.b.c``); 3. the suffix wildcard (``a.b.c`` -> ``a.b.*``);
4. the catch-all SNI entity ``*``; 5. the listener's default certificates (``ssl_cert`` or the generated pair).
A client that sends no SNI gets the default at once: ``*`` is never consulted without an SNI.

Invalid client SNIs (a port, an IP, a misplaced wildcard). Kong looks each candidate up through the DAO, whose
``wildcard_host`` validator rejects such names; each rejected candidate is logged at *debug* level as
``invalid SNI '<sni>', <validator message>, serving default SSL certificate`` and the lookup moves on to the next
candidate. We reproduce that literally: an invalid candidate is a miss plus that debug line (the validator runs
only when debug logging is on, since an invalid name can never be a key of the index). So an invalid SNI is
served the default certificate unless a later *valid* candidate matches - in practice the ``*`` entity, or a
suffix wildcard such as ``a.example.*`` for ``a.example.com:600`` - exactly as Kong behaves.

Certificates that cannot be loaded. Kong parses a certificate when the first handshake needs it and, when the
PEM does not parse (or the SNI's certificate is missing), logs ``[ssl] <reason>`` at error level and aborts that
handshake with ``ngx.exit(ngx.ERROR)``. We parse at build time: the row is skipped with one error line naming its
id, and each of its SNIs maps to an *abort entry* whose context holds no certificate. Switching to it makes
OpenSSL fail the handshake by itself (no certificate can serve any cipher: a ``handshake_failure`` alert, where
Kong's cert callback failure sends ``internal_error``), and the callback logs Kong's ``[ssl] <reason>`` line per
handshake. We chose a certificate-less context over raising in the callback because pyOpenSSL reports callback
exceptions through ``sys.excepthook`` (a traceback on stderr per handshake) and the outcome is the same: the
handshake for that SNI fails, other SNIs are unaffected.

What OpenSSL takes from the context a connection is switched to: the certificates, the cipher list and security
level, DH parameters, the trust store and the ALPN callback. Versions, options, modes (``SSL_MODE_NO_AUTO_CHAIN``),
tickets and the session cache stay those of the listener's base context (``base_context``), so every context gets
the same ``TlsProfile`` and the base context lives as long as the listener (session tickets stay valid across
configuration changes). pyOpenSSL forbids mutating a context once a connection used it: contexts here are
finished when ``build`` returns, and per-connection policy (a client-certificate request for one SNI) belongs on
the connection inside the callback (``conn.set_verify``), never on a shared context.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Protocol

from OpenSSL import SSL

from gateway.settings import ConfigError
from gateway.tls.served.defaults import PemPair
from gateway.tls.served.presets import TlsProfile, apply_profile, pem_file, tls_profile

if TYPE_CHECKING:
    from gateway.settings import Settings

__all__ = [
    "ALPN_PROTOCOLS",
    "CATCH_ALL_SNI",
    "CertificateEntry",
    "CertificateIndex",
    "base_context",
    "compile_row",
    "load_pair",
    "make_sni_callback",
    "new_context",
    "produce_wild_snis",
    "validate_sni_name",
]

CATCH_ALL_SNI: Final = "*"
"""The SNI entity name that catches every client SNI no other name matched (Kong's ``DEFAULT_SNI``)."""

ALPN_PROTOCOLS: Final = (b"http/1.1", b"http/1.0", b"http/0.9")
"""nginx's ALPN list for an HTTP/1 listener (``NGX_HTTP_ALPN_PROTOS``), in server preference order."""


class _Log(Protocol):
    """What this module needs of ``observability.errorlog.ErrorLog``."""

    debug_enabled: bool

    def debug(self, message: str) -> None: ...

    def error(self, message: str) -> None: ...


# ------------------------------------------------------------------------------------------------ SNI names
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


# ------------------------------------------------------------------------------------------------ entries
@dataclass(frozen=True, slots=True)
class CertificateEntry:
    """What a handshake is served: one precompiled context and where it came from.

    Attributes:
        sni: the SNI entity name that matched (``example.com``, ``*.example.com``, ``*``); None for the default.
        certificate_id: the certificate entity's id; None for the listener's default certificates.
        context: the context to switch the connection to (holds the chain(s) and key(s)).
        error: when set, this certificate could not be loaded and the handshake is aborted; the text is Kong's
            reason (``could not parse PEM certificate: ...``), logged as ``[ssl] <error>`` per handshake.
    """

    sni: str | None
    certificate_id: str | None
    context: SSL.Context
    error: str | None = None


@dataclass(frozen=True, slots=True)
class _Compiled:
    """One certificate row compiled: a context, or the reason it could not be loaded."""

    context: SSL.Context | None
    error: str | None


def _select_alpn(conn: SSL.Connection, offered: list[bytes]) -> bytes:
    """nginx's ``SSL_select_next_proto`` with the server list first; no overlap is a fatal alert.

    Raising makes pyOpenSSL return ``SSL_TLSEXT_ERR_ALERT_FATAL`` (OpenSSL sends ``no_application_protocol``) and
    re-raise this ``SSL.Error`` from ``do_handshake``, like any other handshake failure.
    """
    for proto in ALPN_PROTOCOLS:
        if proto in offered:
            return proto
    raise SSL.Error([("SSL routines", "", "no application protocol")])


def _openssl_reason(exc: Exception) -> str:
    """OpenSSL's reason strings from a pyOpenSSL error (``args[0]`` is a list of (lib, func, reason))."""
    args = getattr(exc, "args", ())
    if args and isinstance(args[0], list) and args[0]:
        reasons = [str(item[-1]) for item in args[0] if isinstance(item, tuple) and item]
        if reasons:
            return ", ".join(reasons)
    return str(exc) or type(exc).__name__


def new_context(profile: TlsProfile, blank: SSL.Context | None = None) -> SSL.Context:
    """A server context with ``profile`` applied: a new one, or ``blank`` (a never-configured context whose
    session-ticket keys are shared with other processes, ``gateway.tls.served.ticket_keys``)."""
    ctx = blank if blank is not None else SSL.Context(SSL.TLS_SERVER_METHOD)
    apply_profile(ctx, profile)
    ctx.set_alpn_select_callback(_select_alpn)
    return ctx


def load_pair(ctx: SSL.Context, cert_pem: bytes, key_pem: bytes, alt: bool) -> str | None:
    """Add one chain + key to ``ctx``; returns Kong's failure reason or None.

    ``use_certificate_chain_file`` sets the leaf and then the chain *of the leaf's key type* (OpenSSL keeps one
    chain per key type, and pyOpenSSL has no ``SSL_CTX_add1_chain_cert``), so calling it once per pair gives the
    RSA and the ECDSA leaf their own intermediates. The PEM reaches OpenSSL through an in-memory file.
    """
    label = "alternate " if alt else ""
    with pem_file(cert_pem) as path:
        try:
            ctx.use_certificate_chain_file(path)
        except SSL.Error as exc:
            return f"could not parse PEM certificate: {_openssl_reason(exc)}"
    with pem_file(key_pem) as path:
        try:
            ctx.use_privatekey_file(path)
        except SSL.Error as exc:
            reason = _openssl_reason(exc)
            if "mismatch" in reason:
                return f"could not set {label}configured private key: {reason}"
            return f"could not parse PEM private key: {reason}"
    try:
        ctx.check_privatekey()
    except SSL.Error as exc:
        return f"could not set {label}configured private key: {_openssl_reason(exc)}"
    return None


def _pem_bytes(value: Any) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    return None


def compile_row(row: Mapping[str, Any], profile: TlsProfile) -> _Compiled:
    """Compile one certificate row (``cert``/``key`` and optional ``cert_alt``/``key_alt``)."""
    cert, key = _pem_bytes(row.get("cert")), _pem_bytes(row.get("key"))
    if cert is None or key is None:
        return _Compiled(None, "could not parse PEM certificate: cert and key are required")
    ctx = new_context(profile)
    error = load_pair(ctx, cert, key, alt=False)
    if error is None:
        cert_alt, key_alt = _pem_bytes(row.get("cert_alt")), _pem_bytes(row.get("key_alt"))
        if cert_alt is not None and key_alt is not None:
            error = load_pair(ctx, cert_alt, key_alt, alt=True)
    if error is not None:
        return _Compiled(None, error)
    return _Compiled(ctx, None)


def _content_key(row: Mapping[str, Any]) -> tuple[Any, ...]:
    return (row.get("cert"), row.get("key"), row.get("cert_alt"), row.get("key_alt"))


def _sni_names(row: Mapping[str, Any]) -> Iterable[str]:
    """Names listed on a certificate row (``snis``: strings, or ``{"name": ...}`` in declarative nesting)."""
    for item in row.get("snis") or ():
        if isinstance(item, str):
            yield item
        elif isinstance(item, Mapping) and isinstance(item.get("name"), str):
            yield item["name"]


# ------------------------------------------------------------------------------------------------ the index
class CertificateIndex:
    """SNI name -> precompiled ``CertificateEntry``, plus the default; immutable once built, part of a snapshot."""

    __slots__ = ("_compiled", "_entries", "abort_context", "default", "default_pairs", "errors", "profile")

    def __init__(
        self,
        entries: dict[str, CertificateEntry],
        default: CertificateEntry,
        *,
        profile: TlsProfile,
        default_pairs: tuple[PemPair, ...],
        abort_context: SSL.Context,
        errors: dict[str, str],
        compiled: dict[tuple[Any, ...], _Compiled],
    ) -> None:
        self._entries = entries
        #: served when nothing matches, and to clients that send no SNI
        self.default = default
        #: the TLS settings every context of this index was built with
        self.profile = profile
        #: the PEMs of the default certificates (``base_context`` loads them onto the listener's context)
        self.default_pairs = default_pairs
        #: the certificate-less context abort entries switch to
        self.abort_context = abort_context
        #: certificate id -> why it could not be loaded (its SNIs abort their handshakes)
        self.errors = errors
        self._compiled = compiled

    # -- building -------------------------------------------------------------------------------------------------

    @classmethod
    def build(  # noqa: C901 (older than the rule; issue 12 splits it)
        cls,
        certificates: Sequence[Mapping[str, Any]],
        snis: Sequence[Mapping[str, Any]],
        default_pairs: Sequence[PemPair],
        *,
        profile: TlsProfile | None = None,
        log: _Log | None = None,
        previous: CertificateIndex | None = None,
    ) -> CertificateIndex:
        """Compile every certificate and map every SNI name, once per snapshot.

        Args:
            certificates: certificate rows as the Admin API returns them (``id``, ``cert``, ``key``,
                ``cert_alt``, ``key_alt``, ``snis``...).
            snis: SNI rows (``name``, ``certificate: {"id": ...}``); they are authoritative. Names listed only in
                a certificate row's ``snis`` (a declarative file's nesting) are mapped to that certificate too.
            default_pairs: the listener's default certificates (``defaults.load_default_pairs``), RSA and/or ECDSA.
            profile: the listener's TLS settings (``ciphers.tls_profile(settings)``); Kong's defaults if omitted.
            log: error lines for certificates that cannot be loaded.
            previous: the index being replaced; contexts of unchanged certificates are reused from it, so an
                Admin API write recompiles only what it changed (Kong's ``l1_serializer`` cache, in effect).

        Raises:
            ConfigError: no default certificate, or a default certificate OpenSSL cannot load (nginx would not
                start either).
        """
        profile = profile if profile is not None else TlsProfile.kong_default()
        reusable = previous._compiled if previous is not None and previous.profile == profile else {}
        if not default_pairs:
            raise ConfigError('no "ssl_certificate" is defined for the proxy listener')
        default_ctx = new_context(profile)
        for pair in default_pairs:
            error = load_pair(default_ctx, pair.cert, pair.key, alt=False)
            if error is not None:
                raise ConfigError(f"cannot load default SSL certificate ({pair.source}): {error}")
        default = CertificateEntry(None, None, default_ctx)
        abort_context = new_context(profile)

        compiled: dict[tuple[Any, ...], _Compiled] = {}
        by_id: dict[str, _Compiled] = {}
        errors: dict[str, str] = {}
        for row in certificates:
            cert_id = str(row.get("id"))
            content = _content_key(row)
            result = compiled.get(content) or reusable.get(content) or compile_row(row, profile)
            compiled[content] = result
            by_id[cert_id] = result
            if result.error is not None:
                errors[cert_id] = result.error
                if log is not None:
                    names = sorted(_sni_names(row))
                    log.error(
                        f"[ssl] certificate {cert_id} could not be loaded, handshakes for its SNIs "
                        f"({', '.join(names) or 'none'}) will be aborted: {result.error}"
                    )

        entries: dict[str, CertificateEntry] = {}

        def add(name: str, cert_id: str) -> None:
            if name in entries:
                if entries[name].certificate_id != cert_id and log is not None:
                    log.error(f"[ssl] SNI {name} is associated with more than one certificate; keeping the first")
                return
            result = by_id.get(cert_id)
            if result is None:
                entries[name] = CertificateEntry(
                    name, cert_id, abort_context, f"no SSL certificate configured for sni: {name}"
                )
            elif result.context is None:
                entries[name] = CertificateEntry(name, cert_id, abort_context, result.error)
            else:
                entries[name] = CertificateEntry(name, cert_id, result.context)

        for sni in snis:
            sni_name, ref = sni.get("name"), sni.get("certificate")
            ref_id = ref.get("id") if isinstance(ref, Mapping) else ref
            if isinstance(sni_name, str) and ref_id is not None:
                add(sni_name, str(ref_id))
        for row in certificates:
            for name in _sni_names(row):
                add(name, str(row.get("id")))

        return cls(
            entries,
            default,
            profile=profile,
            default_pairs=tuple(default_pairs),
            abort_context=abort_context,
            errors=errors,
            compiled=compiled,
        )

    # -- lookup ---------------------------------------------------------------------------------------------------

    def select(self, server_name: str | None, log: _Log | None = None) -> CertificateEntry:
        """The entry to serve for the client's SNI (``None``: no SNI sent), in Kong's order.

        ``log`` receives Kong's debug lines (no SNI; each invalid candidate name); it is consulted only when its
        ``debug_enabled`` is true, so the common path is the dict lookups alone.
        """
        if server_name is None:
            if log is not None and log.debug_enabled:
                log.debug("[ssl] no SNI provided by client, serving default SSL certificate")
            return self.default
        entries = self._entries
        entry = entries.get(server_name)
        if entry is not None:
            return entry
        debug = log is not None and log.debug_enabled
        if not entries and not debug:
            return self.default
        if debug:
            _log_if_invalid(server_name, server_name, log)
        prefix, suffix = produce_wild_snis(server_name)
        for candidate in (prefix, suffix, CATCH_ALL_SNI):
            if candidate is None:
                continue
            entry = entries.get(candidate)
            if entry is not None:
                return entry
            if debug:
                _log_if_invalid(server_name, candidate, log)
        return self.default

    def get(self, name: str) -> CertificateEntry | None:
        """The entry of one SNI entity name, exactly (no wildcard expansion)."""
        return self._entries.get(name)

    @property
    def names(self) -> list[str]:
        """Every SNI name in the index, sorted (diagnostics, tests)."""
        return sorted(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"CertificateIndex({len(self._entries)} SNIs, {len(self.errors)} unloadable certificates)"


def _log_if_invalid(sni: str, candidate: str, log: Any) -> None:
    message = validate_sni_name(candidate)
    if message is not None:
        log.debug(f"[ssl] invalid SNI '{sni}', {message}, serving default SSL certificate")


# ------------------------------------------------------------------------------------------------ the listener
def _record_on_app_data(conn: SSL.Connection, entry: CertificateEntry) -> None:
    """Default recorder: ``conn.get_app_data().server_certificate = entry`` when the app data has that attribute."""
    holder = conn.get_app_data()
    if holder is not None:
        try:
            holder.server_certificate = entry
        except AttributeError:
            pass


def make_sni_callback(
    get_index: Callable[[], CertificateIndex],
    log: _Log,
    record: Callable[[SSL.Connection, CertificateEntry], None] | None = _record_on_app_data,
    certificate_phase: Callable[[], Callable[[SSL.Connection, str | None, CertificateEntry], None] | None]
    | None = None,
) -> Callable[[SSL.Connection], None]:
    """The servername callback for the listener's base context (``ctx.set_tlsext_servername_callback``).

    OpenSSL (1.1.1+) calls it for every ClientHello, with or without SNI. It reads the *current* index through
    ``get_index`` (e.g. ``lambda: state.snapshot.certificates``), so an Admin API change applies to the next
    handshake without a restart, switches the connection to the selected entry's context, and hands the entry to
    ``record`` (by default onto the connection's app data, the ``TlsSession``, as ``server_certificate``).

    ``certificate_phase`` returns the current snapshot's certificate-phase hook (plugins: mtls-auth requests a
    client certificate for some SNIs, ``gateway.plugins.mtls_auth.handshake``), or None; the hook runs after the
    switch with the connection, the client's SNI and the chosen entry, and may switch to a precompiled variant context.
    """

    def on_server_name(conn: SSL.Connection) -> None:
        raw = conn.get_servername()
        # latin-1 maps bytes 1:1, so any SNI compares exactly as the client sent it (index names are ASCII)
        server_name = raw.decode("latin-1") if raw is not None else None
        entry = get_index().select(server_name, log)
        conn.set_context(entry.context)
        if entry.error is not None:
            log.error(f"[ssl] {entry.error}")
        if certificate_phase is not None:
            hook = certificate_phase()
            if hook is not None:
                hook(conn, server_name, entry)
        if record is not None:
            record(conn, entry)

    return on_server_name


def base_context(
    settings: Settings | None,
    index: CertificateIndex,
    sni_callback: Callable[[SSL.Connection], None] | None = None,
    blank: SSL.Context | None = None,
) -> SSL.Context:
    """The listening socket's context: the TLS profile, the default certificates, and the servername callback.

    Build it once per listener (per settings load): OpenSSL keeps session tickets' keys and the session cache
    here, whatever context a connection is later switched to. ``settings=None`` uses ``index.profile``.
    ``blank``: configure this never-used context instead of creating one (a worker's inherited ticket keys).
    """
    profile = tls_profile(settings) if settings is not None else index.profile
    ctx = new_context(profile, blank)
    for pair in index.default_pairs:
        error = load_pair(ctx, pair.cert, pair.key, alt=False)
        if error is not None:
            raise ConfigError(f"cannot load default SSL certificate ({pair.source}): {error}")
    if sni_callback is not None:
        ctx.set_tlsext_servername_callback(sni_callback)
    return ctx
