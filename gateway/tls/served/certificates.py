"""Server-side certificate selection: SNI -> certificate, as Kong's ``kong/runloop/certificate.lua`` does it.

Theory of operation
-------------------
Everything expensive happens once, when the runtime builds a snapshot: ``CertificateIndex.build`` parses every
certificate row with OpenSSL and compiles one ``SSL.Context`` per certificate (chain + key, plus the alternative
pair on the *same* context so OpenSSL picks RSA or ECDSA from the client's signature algorithms), then maps every
SNI name to a precompiled ``CertificateEntry``. A handshake costs the servername callback a few dict lookups and
one ``SSL_set_SSL_CTX`` (``make_sni_callback``); no PEM is parsed and no context is built on that path. The
compiling itself is in ``contexts.py``, the wildcard candidates of a client SNI in ``sni_names.py``.

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

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from OpenSSL import SSL

from gateway.entities.index import foreign_id
from gateway.settings import ConfigError
from gateway.tls.served.contexts import Compiled, compile_row, content_key, load_default_pairs_onto, new_context
from gateway.tls.served.defaults import PemPair
from gateway.tls.served.presets import TlsProfile, tls_profile
from gateway.tls.served.sni_names import CATCH_ALL_SNI, produce_wild_snis, validate_sni_name

if TYPE_CHECKING:
    from gateway.settings import Settings

__all__ = ["CertificateEntry", "CertificateIndex", "base_context", "make_sni_callback"]


class _Log(Protocol):
    """What this module needs of ``observability.errorlog.ErrorLog``."""

    debug_enabled: bool

    def debug(self, message: str) -> None: ...

    def error(self, message: str) -> None: ...


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
        compiled: dict[tuple[Any, ...], Compiled],
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
    def build(
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
        default = CertificateEntry(None, None, load_default_pairs_onto(new_context(profile), default_pairs))
        abort_context = new_context(profile)
        compiled, by_id, errors = _compile_rows(certificates, profile, reusable, log)
        entries: dict[str, CertificateEntry] = {}
        for name, cert_id in _named_certificates(certificates, snis):
            if name in entries:
                if entries[name].certificate_id != cert_id and log is not None:
                    log.error(f"[ssl] SNI {name} is associated with more than one certificate; keeping the first")
                continue
            entries[name] = _entry(name, cert_id, by_id.get(cert_id), abort_context)
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


def _compile_rows(
    certificates: Sequence[Mapping[str, Any]],
    profile: TlsProfile,
    reusable: Mapping[tuple[Any, ...], Compiled],
    log: _Log | None,
) -> tuple[dict[tuple[Any, ...], Compiled], dict[str, Compiled], dict[str, str]]:
    """Every certificate row compiled once per content: (by content, by id, id -> why it cannot be loaded)."""
    compiled: dict[tuple[Any, ...], Compiled] = {}
    by_id: dict[str, Compiled] = {}
    errors: dict[str, str] = {}
    for row in certificates:
        cert_id = str(row.get("id"))
        content = content_key(row)
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
    return compiled, by_id, errors


def _named_certificates(
    certificates: Sequence[Mapping[str, Any]], snis: Sequence[Mapping[str, Any]]
) -> Iterable[tuple[str, str]]:
    """(SNI name, certificate id) pairs: the SNI rows first (authoritative), then names nested in certificate rows."""
    for sni in snis:
        sni_name, ref_id = sni.get("name"), foreign_id(sni.get("certificate"))
        if isinstance(sni_name, str) and ref_id is not None:
            yield sni_name, ref_id
    for row in certificates:
        for name in _sni_names(row):
            yield name, str(row.get("id"))


def _entry(name: str, cert_id: str, result: Compiled | None, abort_context: SSL.Context) -> CertificateEntry:
    """The entry of one SNI name: its certificate's context, or an abort entry with Kong's reason."""
    if result is None:
        return CertificateEntry(name, cert_id, abort_context, f"no SSL certificate configured for sni: {name}")
    if result.context is None:
        return CertificateEntry(name, cert_id, abort_context, result.error)
    return CertificateEntry(name, cert_id, result.context)


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
    ctx = load_default_pairs_onto(new_context(profile, blank), index.default_pairs)
    if sni_callback is not None:
        ctx.set_tlsext_servername_callback(sni_callback)
    return ctx
