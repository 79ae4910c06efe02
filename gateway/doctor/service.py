"""``gateway doctor service NAME``: a running gateway's service, its upstream TLS profile and the handshake it makes.

1. **The profile, as the gateway has it**: ``GET /services/{NAME}/tls`` (our Admin API extension, read from the
   compiled snapshot the proxy uses) gives every value with its origin; each is printed with the words for where it
   came from (``ORIGIN_WORDS``).
2. **The same profile, rebuilt here**: that endpoint names the client certificate and the CA certificates by id but
   does not carry their PEMs (nor the key), so the doctor fetches the very store rows the gateway compiled
   (``GET /services/{id}``, ``/certificates/{id}``, ``/ca_certificates/{id}``, ``/upstreams/{host}``) and compiles
   them with the gateway's own ``UpstreamTlsCompiler``, with the settings ``gateway start`` would read (``-c CONF``
   and ``KONG_*``: the global ``client_ssl_cert``, ``proxy_ssl_trusted_certificate``, ``proxy_ssl_verify[_depth]``).
   The rebuilt profile's values and origins are then compared with the endpoint's: a difference (usually settings
   that are not the running gateway's: pass its ``-c CONF``) is a problem, printed before the handshake.
3. **The handshake**: ``gateway.doctor.upstream.examine`` with that profile, against the service's host and port, or,
   when the host names an Upstream entity, against its first target with a weight (the name sent and checked is then
   the upstream's ``host_header`` or the target's host, as the balancer derives it): the chain, the verification step
   by step, the line Kong's error log shows, the cause and the fix.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from gateway.doctor.admin import UNREACHABLE_FIX, AdminApi, AdminError, admin_url, segment
from gateway.doctor.findings import Finding, Kind, Severity
from gateway.doctor.upstream import Compiled, UpstreamQuery, examine, parse_target
from gateway.settings import ConfigError, Settings, load_settings
from gateway.tls.engine.verify_codes import verify_error_text
from gateway.tls.engine.x509 import PemError, TrustStore, load_pem_chain
from gateway.tls.upstream.globals import UpstreamTlsGlobals
from gateway.tls.upstream.profile import ContextCache, UpstreamTlsCompiler, UpstreamTlsProfile
from gateway.tls.upstream.trace import profile_json

__all__ = ["ORIGIN_WORDS", "ServiceQuery", "diagnose_service"]

#: what each origin means, by the endpoint's ``from`` label ({value}: the value's name on a service)
ORIGIN_WORDS: Final[dict[str, str]] = {
    "service": "the service's own {value}",
    "upstream": "the Upstream entity named like the service's host (its client_certificate)",
    "default": "Kong's default (nothing set on the service or in kong.conf)",
    "none": "no level gives one (not the service, not its Upstream entity, and client_ssl is off)",
}

#: the comparison of the rebuilt profile with the endpoint's: (label, path into profile_json's document)
COMPARED: Final = (
    ("client certificate origin", ("client_certificate", "from")),
    ("client certificate id", ("client_certificate", "id")),
    ("client certificate subject", ("client_certificate", "subject")),
    ("tls_verify", ("verify", "value")),
    ("tls_verify origin", ("verify", "from")),
    ("trust store", ("trust", "store")),
    ("trust store origin", ("trust", "from")),
    ("verify depth", ("depth", "value")),
    ("verify depth origin", ("depth", "from")),
)


@dataclass(frozen=True, slots=True)
class ServiceQuery:
    """What ``gateway doctor service`` was asked: the service (id or name), the Admin API, the settings file."""

    name: str
    admin: str | None = None
    conf: str | None = None
    timeout: float = 10.0


def _origin(source: str, value: str) -> str:
    if source.startswith("global setting "):
        setting = source.removeprefix("global setting ")
        return f"{source} (kong.conf or KONG_{setting.upper()})"
    return f"{source}: {ORIGIN_WORDS.get(source, source).format(value=value)}"


def _profile_findings(tls: Mapping[str, Any]) -> list[Finding]:
    """Every value of ``GET /services/{s}/tls`` with where it came from, as the running gateway has it."""
    cert, verify, trust, depth = tls["client_certificate"], tls["verify"], tls["trust"], tls["depth"]
    if cert["from"] == "none":
        cert_words, cert_origin = "none", "from none: " + ORIGIN_WORDS["none"]
    else:
        shown = cert["subject"] or "(unusable: nothing is sent, see the notice below)"
        cert_words = f"{shown}" + (f" (certificate {cert['id']})" if cert["id"] else "")
        cert_origin = f"from {_origin(cert['from'], 'client_certificate')}"
    values = (
        ("client certificate", cert_words, cert_origin),
        ("tls_verify", "on" if verify["value"] else "off", f"from {_origin(verify['from'], 'tls_verify')}"),
        ("trust store", trust["store"], f"from {_origin(trust['from'], 'ca_certificates')}"),
        ("verify depth", str(depth["value"]), f"from {_origin(depth['from'], 'tls_verify_depth')}"),
    )
    findings = [
        Finding.of(Kind.PROFILE_VALUE, f"{what}: {value}, {origin}.", value=what) for what, value, origin in values
    ]
    reuse = "on" if tls.get("session_reuse") else "off"
    findings.append(Finding.of(Kind.PROFILE_VALUE, f"session reuse: {reuse} (proxy_ssl_session_reuse).", value="reuse"))
    findings += [
        Finding.of(Kind.UPSTREAM_NOTICE, f"the gateway logs for every request: [{n['level']}] {n['message']}")
        for n in tls.get("notices", ())
    ]
    return findings


@dataclass
class _Rows:
    """The store rows the gateway compiled this service's profile from, as the Admin API gives them."""

    service: dict[str, Any]
    upstream: dict[str, Any] | None
    config: dict[str, list[dict[str, Any]]]


def _rows(api: AdminApi, service: dict[str, Any]) -> _Rows:
    """The service's certificates, CA certificates and Upstream entity (a missing one stays missing: the compiler
    then says what the gateway says)."""
    upstream = api.get(f"/upstreams/{segment(str(service.get('host')))}")
    config: dict[str, list[dict[str, Any]]] = {"certificates": [], "ca_certificates": [], "upstreams": []}
    if upstream is not None:
        config["upstreams"].append(upstream)
    cert_ids = {_ref(service.get("client_certificate")), _ref((upstream or {}).get("client_certificate"))}
    for cert_id in sorted(i for i in cert_ids if i):
        row = api.get(f"/certificates/{segment(cert_id)}")
        if row is not None:
            config["certificates"].append(row)
    for ca_id in service.get("ca_certificates") or ():
        row = api.get(f"/ca_certificates/{segment(str(ca_id))}")
        if row is not None:
            config["ca_certificates"].append(row)
    return _Rows(service, upstream, config)


def _ref(value: Any) -> str | None:
    if isinstance(value, Mapping):
        value = value.get("id")
    return str(value) if value else None


def _differences(local: Mapping[str, Any], remote: Mapping[str, Any]) -> list[Finding]:
    found = []
    for label, (group, key) in COMPARED:
        mine, theirs = local[group][key], remote[group][key]
        if mine != theirs:
            found.append(
                Finding.of(
                    Kind.PROFILE_DIFFERS,
                    f"{label}: the running gateway has {theirs!r}, the same rows compiled here with these settings "
                    f"give {mine!r}; the handshake below uses the rebuilt profile.",
                    "run the doctor with the gateway's own settings (-c CONF and the same KONG_* variables).",
                    field=label,
                )
            )
    return found


def _target(api: AdminApi, rows: _Rows) -> tuple[UpstreamQuery, Finding | None] | Finding:
    """Where the handshake goes: the service's host and port, or its Upstream entity's first target with a weight."""
    service, upstream = rows.service, rows.upstream
    if upstream is None:
        return UpstreamQuery(str(service["host"]), int(service.get("port") or 443)), None
    listing = api.get(f"/upstreams/{segment(str(upstream['id']))}/targets") or {}
    targets = [t for t in listing.get("data", ()) if int(t.get("weight", 100)) > 0]
    if not targets:
        return Finding.of(
            Kind.CONNECT_FAILED,
            f"the service's host names the Upstream entity {upstream.get('name')}, which has no target with a weight "
            "> 0: the gateway answers 503 (failure to get a peer from the ring-balancer) before any TLS.",
            "add a target (POST /upstreams/{name}/targets).",
        )
    host, port = parse_target(str(targets[0]["target"]))
    name = upstream.get("host_header") or host
    said = Finding.of(
        Kind.UPSTREAM_TARGET,
        f"the service's host names the Upstream entity {upstream.get('name')}: connecting to its target "
        f"{targets[0]['target']} (the first with a weight; the balancer may pick another of the {len(targets)}), "
        f"with the name {name} ({'its host_header' if upstream.get('host_header') else 'the target host'}).",
        target=targets[0]["target"],
    )
    return UpstreamQuery(host, port, sni=name), said


def _store(rows: _Rows, profile: UpstreamTlsProfile, settings: Settings) -> TrustStore:
    """The store the rebuilt profile verifies against (for the walk and the depth arithmetic)."""
    if profile.origins.trust_ids:
        certs = []
        for row in rows.config["ca_certificates"]:
            try:
                certs += load_pem_chain(row["cert"])
            except (PemError, KeyError):
                continue
        return TrustStore(certs)
    return UpstreamTlsGlobals(settings).proxy_trust


def _compile(rows: _Rows, settings: Settings) -> tuple[UpstreamTlsProfile, UpstreamTlsProfile]:
    compiler = UpstreamTlsCompiler(settings, rows.config, contexts=ContextCache())
    profile = compiler.profile(rows.service)
    look = compiler.profile({**rows.service, "tls_verify": False})
    assert profile is not None and look is not None  # the endpoint said tls: true
    return profile, look


async def _diagnose(api: AdminApi, query: ServiceQuery, settings: Settings) -> list[Finding]:
    tls = api.get(f"/services/{segment(query.name)}/tls")
    if tls is None:
        return [
            Finding.of(
                Kind.NOT_FOUND,
                f"the gateway at {api.base} has no service with the id or name {query.name!r} "
                f"(GET /services/{segment(query.name)}/tls: 404).",
                f"list them with curl {api.base}/services.",
            )
        ]
    who = tls["service"].get("name") or tls["service"]["id"]
    if not tls.get("tls"):
        return [
            Finding.of(
                Kind.NOT_TLS,
                f"service {who} speaks {tls.get('protocol')} to its upstream: no upstream TLS, layers 3 and 4 do not "
                "apply.",
                "set protocol https (or tls for a stream service) to connect with TLS.",
            )
        ]
    service = api.get(f"/services/{segment(str(tls['service']['id']))}")
    if service is None:
        return [Finding.of(Kind.NOT_FOUND, f"service {who} was deleted while the doctor read it.")]
    head = Finding.of(
        Kind.PROFILE_VALUE,
        f"service {who} ({service.get('protocol')}://{service.get('host')}:{service.get('port')}): its upstream TLS "
        f"profile, as the gateway at {api.base} has it (GET /services/{segment(query.name)}/tls):",
        value="service",
    )
    findings = [head, *_profile_findings(tls)]
    rows = _rows(api, service)
    profile, look = _compile(rows, settings)
    findings += _differences(profile_json(profile), tls)
    target = _target(api, rows)
    if isinstance(target, Finding):
        return [*findings, target]
    where, said = target
    findings += [said] if said is not None else []
    trust = f"{tls['trust']['store']}, from {tls['trust']['from']}"
    compiled = Compiled(profile, look, _store(rows, profile, settings), trust)
    found = await examine(UpstreamQuery(where.host, where.port, where.sni, timeout=query.timeout), compiled)
    if service.get("protocol") == "tls":  # a stream service: its upstream need not speak HTTP, so GET / proves nothing
        found = [f for f in found if f.kind not in (Kind.UPSTREAM_ANSWER, Kind.UPSTREAM_NO_ANSWER)]
    findings += found
    if not profile.verify:
        # the gateway checks neither the chain nor the name: a mismatch is what verification *would* refuse
        findings = [
            dataclasses.replace(f, severity=Severity.WARNING) if f.kind is Kind.NAME_MISMATCH else f for f in findings
        ]
        findings.append(_verify_off(tls, findings))
    return findings


def _verify_off(tls: Mapping[str, Any], findings: Sequence[Finding]) -> Finding:
    codes = [code for f in findings if f.kind is Kind.VERIFY_STEP for code in f.facts.get("codes", ())]
    if codes:
        would = f"with tls_verify on it would fail: {codes[0]}:{verify_error_text(codes[0])}"
    elif any(f.kind is Kind.NAME_MISMATCH for f in findings):
        would = "with tls_verify on the chain verifies but the host check would fail"
    else:
        would = "with tls_verify on the chain verifies"
    return Finding.of(
        Kind.VERIFY_OFF,
        f"tls_verify is off (from {tls['verify']['from']}): the gateway accepts whatever certificate this upstream "
        f"sends; {would}.",
        "set tls_verify = true on the service (or proxy_ssl_verify = on) to have the upstream's certificate checked.",
    )


def diagnose_service(query: ServiceQuery) -> list[Finding]:
    """``gateway doctor service``: the findings (see the module docstring); a problem when the Admin API cannot be
    reached (its URL named), the service is unknown, the profile cannot be rebuilt, or the gateway would refuse."""
    try:
        settings = load_settings(query.conf)
    except ConfigError as exc:
        return [Finding.of(Kind.START_REFUSES, f"the settings do not load: {exc}")]
    try:
        api = AdminApi(admin_url(query.admin, settings), query.timeout)
        return asyncio.run(_diagnose(api, query, settings))
    except AdminError as exc:
        return [Finding.of(Kind.ADMIN_UNREACHABLE, f"{exc}.", UNREACHABLE_FIX)]
    except ConfigError as exc:  # a global client_ssl_cert / proxy_ssl_trusted_certificate that start refuses too
        return [Finding.of(Kind.START_REFUSES, f"gateway start refuses the upstream TLS settings: {exc}")]
