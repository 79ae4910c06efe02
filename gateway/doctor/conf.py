"""``gateway check``'s file pass: every certificate, key and CA file the configuration names, as ``start`` loads it.

Two steps, so that "check says valid" means "start accepts it" and a refusal is explained:

1. **Explain** each file setting: read it as ``start`` does (``gateway.tls.pem_settings.read_pem_setting``: a path,
   base64 or inline PEM, with each setting's wording), parse it with
   the engine, and run the doctor's ``examine`` on certificate/key pairs (order, key match, dates...) or
   ``examine_trust`` on trust bundles. Findings name the setting and the file.
2. **Gate**: run the very calls ``start`` makes with these settings (``START_GATES``) and turn each ``ConfigError``
   into a ``START_REFUSES`` problem carrying start's own message. No rule is re-implemented: if the gate passes,
   start passes this step.

Which settings are read, and when (the same conditions as ``start``):

==================================  ====================================================================
setting                             read when
==================================  ====================================================================
``ssl_cert`` / ``ssl_cert_key``     a ``proxy_listen`` entry has ``ssl`` (empty: the generated pair,
                                    which start makes or repairs itself, so nothing to check)
``ssl_dhparam``                     a ``proxy_listen`` entry has ``ssl`` (``tls_profile``)
``client_ssl_cert`` / ``_key``      ``client_ssl = on``
``proxy_ssl_trusted_certificate``   always (loaded once per start and SIGHUP)
``lua_ssl_trusted_certificate``     always here; ``start`` reads it when an upstream has ``https`` active
                                    health checks, but Kong refuses a missing file at start, so we check it
==================================  ====================================================================

Severity (``Finding.for_check``): what start refuses is a problem (exit 1); what the doctor calls a problem but start
accepts (an expired certificate: Kong serves it; a lone leaf) is a warning here, like an expiry within 30 days.
A setting given but not read (``ssl_cert`` without an ``ssl`` listener) is a warning too.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Final

from gateway.doctor.cert import examine, examine_trust
from gateway.doctor.findings import Finding, Kind, Severity
from gateway.doctor.reading import parse_certificates, parse_key
from gateway.settings import ConfigError, Settings
from gateway.tls.pem_settings import read_pem_setting
from gateway.tls.served.certificates import CertificateIndex
from gateway.tls.served.defaults import load_default_pairs
from gateway.tls.served.listener import ssl_listeners
from gateway.tls.served.presets import tls_profile
from gateway.tls.upstream.globals import UpstreamTlsGlobals
from gateway.tls.upstream.probes import HealthcheckTlsCompiler

__all__ = ["START_GATES", "check_files"]

_Loader = Callable[[str, str], bytes]


def _served_loader(what: str) -> _Loader:
    return lambda key, value: read_pem_setting(key, value, what)


#: (certificate loader, key loader) of each layer, as start reads them
_SERVED_LOADERS: Final = (_served_loader("certificate"), _served_loader("key"))
_UPSTREAM_LOADERS: Final = (read_pem_setting, read_pem_setting)


# ----------------------------------------------------------------------------------------------------------
# Step 1: explain each file
# ----------------------------------------------------------------------------------------------------------


def _label(setting: str, value: str) -> str:
    """``ssl_cert (/etc/certs/a.pem)``; inline values are not repeated."""
    if "-----BEGIN " in value:
        return f"{setting} (inline PEM)"
    if os.path.exists(value) or os.sep in value or len(value) < 64:
        return f"{setting} ({value})"
    return f"{setting} (base64 PEM)"


def _read(setting: str, value: str, loader: _Loader) -> bytes | Finding:
    """The PEM bytes as start reads them, or why not: missing file, unreadable file, or nothing PEM-shaped."""
    try:
        return loader(setting, value)
    except ConfigError:
        pass
    if os.path.exists(value):
        try:
            with open(value, "rb"):
                pass
        except OSError as exc:
            return Finding.of(Kind.FILE_UNREADABLE, f"cannot be read: {exc.strerror}.", "make it a readable file.")
        return Finding.of(Kind.NOT_PEM, "holds no PEM block ('-----BEGIN ...').", "give a PEM file.")
    if "-----BEGIN " not in value and (os.sep in value or value.endswith((".pem", ".crt", ".cer", ".key"))):
        return Finding.of(
            Kind.FILE_MISSING,
            "no such file.",
            "check the path (a relative path starts in the directory gateway runs in).",
        )
    return Finding.of(Kind.NOT_PEM, "neither an existing file, base64 nor PEM.", "give a path to a PEM file.")


def _pair(
    cert_setting: str, cert_value: str, key_setting: str, key_value: str, loaders: tuple[_Loader, _Loader]
) -> Iterator[Finding]:
    """A certificate chain and its key (``ssl_cert``, ``client_ssl_cert``): the doctor's findings on them."""
    cert_label, key_label = _label(cert_setting, cert_value), _label(key_setting, key_value)
    cert_data = _read(cert_setting, cert_value, loaders[0])
    key_data = _read(key_setting, key_value, loaders[1])
    certs = parse_certificates(cert_data, "it") if isinstance(cert_data, bytes) else cert_data
    key = parse_key(key_data, "it") if isinstance(key_data, bytes) else key_data
    if isinstance(certs, Finding):
        yield certs.about(cert_label)
    if isinstance(key, Finding):
        yield key.about(key_label)
    if isinstance(certs, Finding):
        return
    for finding in examine(certs, key=None if isinstance(key, Finding) else key):
        yield finding.about(key_label if finding.kind is Kind.KEY_MISMATCH else cert_label)


def _trust_file(setting: str, value: str) -> Iterator[Finding]:
    """One entry of a trust store setting (a CA bundle)."""
    label = _label(setting, value)
    data = _read(setting, value, read_pem_setting)
    certs = parse_certificates(data, "it") if isinstance(data, bytes) else data
    if isinstance(certs, Finding):
        yield certs.about(label)
        return
    for finding in examine_trust(certs):
        yield finding.about(label)


def _served(settings: Settings) -> Iterator[Finding]:
    if not settings.ssl_cert:
        return
    if not ssl_listeners(settings):
        yield Finding.of(
            Kind.NOT_USED,
            "ssl_cert is set but no proxy_listen entry has ssl: start does not read it.",
            "add ssl to a proxy_listen entry, or remove ssl_cert and ssl_cert_key.",
        )
        return
    for cert_value, key_value in zip(settings.ssl_cert, settings.ssl_cert_key, strict=False):
        yield from _pair("ssl_cert", cert_value, "ssl_cert_key", key_value, _SERVED_LOADERS)


def _client(settings: Settings) -> Iterator[Finding]:
    cert, key = settings.client_ssl_cert, settings.client_ssl_cert_key
    if not settings.client_ssl:
        if cert or key:
            yield Finding.of(
                Kind.NOT_USED,
                "client_ssl_cert is set but client_ssl = off: start does not read it.",
                "set client_ssl = on to present it to upstreams, or remove it.",
            )
        return
    if cert and key:  # both are required with client_ssl = on: the settings loader says so already
        yield from _pair("client_ssl_cert", cert, "client_ssl_cert_key", key, _UPSTREAM_LOADERS)


def _trusted(settings: Settings) -> Iterator[Finding]:
    proxy = settings.proxy_ssl_trusted_certificate
    for part in (proxy or "").split(","):
        if part.strip() and part.strip() != "system":
            yield from _trust_file("proxy_ssl_trusted_certificate", part.strip())
    for entry in settings.lua_ssl_trusted_certificate:
        if entry.strip() and entry.strip() != "system":
            yield from _trust_file("lua_ssl_trusted_certificate", entry.strip())


# ----------------------------------------------------------------------------------------------------------
# Step 2: the calls start makes
# ----------------------------------------------------------------------------------------------------------


def _gate_served(settings: Settings) -> None:
    """``ServerTlsConfig.load`` + the default certificates of ``CertificateIndex.build`` (OpenSSL loads the pairs).

    Without ``ssl_cert`` start generates (or repairs) its own pair under the prefix: check writes nothing, so only
    the profile (``ssl_dhparam``, ciphers) is loaded then.
    """
    if not ssl_listeners(settings):
        return
    profile = tls_profile(settings)
    if settings.ssl_cert:
        CertificateIndex.build((), (), load_default_pairs(settings), profile=profile)


def _gate_upstream(settings: Settings) -> None:
    """What every snapshot build does first (``UpstreamTlsGlobals.load_proxy_side``, as ``runtime.snapshot`` calls
    it): the global trust store, then the global client certificate."""
    UpstreamTlsGlobals(settings).load_proxy_side()


def _gate_probes(settings: Settings) -> None:
    """What an upstream with ``https`` health checks makes the snapshot build load (``lua_ssl_*``)."""
    compiler = HealthcheckTlsCompiler(settings, {})
    compiler.profile({"name": "gateway-check"})
    compiler.finish()


START_GATES: Final[tuple[tuple[str, Callable[[Settings], None]], ...]] = (
    ("the proxy's ssl listener", _gate_served),
    ("the upstream TLS settings", _gate_upstream),
    (
        "the health-check TLS settings (it reads them once an upstream has https active checks; Kong, at start)",
        _gate_probes,
    ),
)
"""(what, call): the start-up steps that read certificate files, in start's order."""


def _gates(settings: Settings) -> Iterator[Finding]:
    seen: set[str] = set()
    for what, gate in START_GATES:
        try:
            gate(settings)
        except ConfigError as exc:
            message = str(exc)
            if message not in seen:
                seen.add(message)
                yield Finding.of(
                    Kind.START_REFUSES,
                    f"gateway start refuses {what}: {message}",
                    start_message=message,
                )


def check_files(settings: Settings) -> list[Finding]:
    """Warnings and problems about the files the settings name (nothing for a configuration without any).

    A problem means ``gateway start`` (or Kong) refuses the configuration; warnings do not fail.
    """
    findings = [*_served(settings), *_client(settings), *_trusted(settings)]
    findings = [f.for_check() for f in findings if f.severity is not Severity.OK]
    findings.extend(_gates(settings))
    return findings
