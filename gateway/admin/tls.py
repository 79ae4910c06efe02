"""Our Admin API extension (not Kong's): "which setting wins", asked directly (``docs/tls-trace.md``).

- ``GET /services/{id or name}/tls``: the service's effective upstream TLS profile (layers 3 and 4), every value with
  its origin (``service``, ``upstream``, ``global setting <name>``, ``default``), read from the compiled profile the
  next new upstream connection uses (``tls.upstream.trace.profile_json``).
- ``GET /tls/served?sni=NAME`` (any name; no ``sni``: a client that sends none) and ``GET /snis/{name or id}/tls``
  (an SNI entity's own name): the certificate a handshake with that SNI gets and the rule that chose it, by calling
  the snapshot's ``CertificateIndex.select`` (the SNI callback's call), and whether mtls-auth would request a client
  certificate, with which CA names, by calling its handshake map's ``match`` (the certificate phase's call).

Both read the compiled snapshot the proxy uses (``snapshot()``: the proxy's own in a single process; with worker
processes, one the master builds from the store for these endpoints, ``gateway.runtime.tls_view``), never a second
implementation of the rules. The JSON shapes are documented and kept stable: ``gateway doctor service`` and
``gateway doctor sni`` are their clients.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from cryptography import x509

from gateway.admin.bodies import unescape_segment
from gateway.admin.context import Context
from gateway.admin.endpoints import Handler
from gateway.admin.http import Response, json_response, message
from gateway.plugins.mtls_auth.names import rfc2253
from gateway.store.interface import Store
from gateway.tls.served.certificates import CertificateEntry, CertificateIndex
from gateway.tls.served.trace import key_type, not_after, served_rule
from gateway.tls.upstream.trace import profile_json

__all__ = ["SnapshotSource", "tls_routes"]

#: ``() -> the current compiled snapshot`` (a ``gateway.runtime.snapshot.Snapshot``)
SnapshotSource = Callable[[], Awaitable[Any]]

NO_SSL_LISTENER = "no proxy listener terminates TLS (proxy_listen has no 'ssl' listener): no certificate is served"


def _certificates(pem: str | bytes | None) -> list[x509.Certificate]:
    if not pem:
        return []
    data = pem.encode() if isinstance(pem, str) else pem
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError:
        return []


def _leaves(entry: CertificateEntry, index: CertificateIndex, row: Mapping[str, Any] | None) -> list[x509.Certificate]:
    """The leaf of each pair the entry serves (RSA and/or ECDSA): display only, from the PEMs it was compiled from."""
    if entry.certificate_id is None:
        pems: Sequence[str | bytes | None] = [pair.cert for pair in index.default_pairs]
    else:
        pems = [row.get("cert"), row.get("cert_alt")] if row is not None else []
    return [chain[0] for chain in map(_certificates, pems) if chain]


def served_json(
    server_name: str | None, index: CertificateIndex, request_map: Any, row: Mapping[str, Any] | None
) -> dict[str, Any]:
    """What a handshake with ``server_name`` is served, and whether a client certificate is requested."""
    entry = index.select(server_name)
    leaves = _leaves(entry, index, row)
    request = request_map.match(server_name) if request_map is not None else None
    return {
        "sni": server_name,
        "certificate": {
            "id": entry.certificate_id,
            "sni_entity": entry.sni,
            "rule": served_rule(server_name, entry, index).value,
            "key_types": [key_type(leaf) for leaf in leaves],
            "subject": rfc2253(leaves[0].subject) if leaves else None,
            "not_after": not_after(leaves[0]) if leaves else None,
            "error": entry.error,
        },
        "client_certificate_request": {
            "requested": request is not None,
            "requested_by": request.pattern if request is not None else None,
            "ca_dns": [rfc2253(ca.subject) for ca in request.ca_certificates] if request is not None else [],
        },
    }


async def _served(ctx: Context, snapshot: Any, server_name: str | None) -> Response:
    index = snapshot.certificates
    if index is None:
        return message(404, NO_SSL_LISTENER)
    policy = snapshot.plugins.policies.get("mtls-auth")
    request_map = getattr(policy, "sni_map", None)
    cert_id = index.select(server_name).certificate_id
    row = await ctx.run(lambda db: db.dao("certificates").select(cert_id)) if cert_id is not None else None
    return json_response(200, served_json(server_name, index, request_map, row))


def _tls_served(snapshot: SnapshotSource) -> Handler:
    async def handler(ctx: Context) -> Response:
        sni = ctx.args.uri.get("sni")
        if isinstance(sni, list):
            sni = sni[-1] if sni else None
        if sni is not None and not isinstance(sni, str):
            return message(400, "sni must be a string")
        return await _served(ctx, await snapshot(), sni or None)

    return handler


def _sni_tls(snapshot: SnapshotSource) -> Handler:
    async def handler(ctx: Context) -> Response:
        key = unescape_segment(ctx.params["snis"])
        row = await ctx.run(lambda db: db.dao("snis").select(key))
        if row is None:
            return message(404, "Not found")
        return await _served(ctx, await snapshot(), str(row["name"]))

    return handler


def _service_tls(snapshot: SnapshotSource) -> Handler:
    async def handler(ctx: Context) -> Response:
        key = unescape_segment(ctx.params["services"])

        def select(db: Store) -> Any:
            return db.dao("services").select(key)

        row = await ctx.run(select)
        if row is None:
            return message(404, "Not found")
        current = await snapshot()
        target = current.services.get(row["id"])
        body: dict[str, Any] = {
            "service": {"id": row["id"], "name": row.get("name")},
            "protocol": row.get("protocol") or "http",
        }
        profile = target.tls_profile if target is not None else None
        if profile is None:
            body["tls"] = False  # a plain upstream connection: layers 3 and 4 do not apply
            return json_response(200, body)
        body["tls"] = True
        body.update(profile_json(profile))
        return json_response(200, body)

    return handler


def tls_routes(snapshot: SnapshotSource) -> dict[str, dict[str, Handler]]:
    """Pattern -> method -> handler for the three endpoints (see the module docstring)."""
    return {
        "/services/:services/tls": {"GET": _service_tls(snapshot)},
        "/snis/:snis/tls": {"GET": _sni_tls(snapshot)},
        "/tls/served": {"GET": _tls_served(snapshot)},
    }
