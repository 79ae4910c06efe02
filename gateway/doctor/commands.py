"""The command-line entries of the doctor's questions to a running gateway: ``doctor service`` and ``doctor sni``.

Kept out of ``gateway.cli`` (which only calls ``add_running_gateway_commands``) so each command's options, help and
printing sit next to each other. Exit status: 0 nothing is a problem, 1 a problem (including an Admin API that
cannot be reached or an unknown service), 2 a usage error (argparse).
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_running_gateway_commands"]

ADMIN_HELP = (
    "the running gateway's Admin API (default: the first admin_listen entry of -c CONF / KONG_*, Kong's default "
    "http://127.0.0.1:8001)"
)


def _print(findings: Any, args: argparse.Namespace, **context: Any) -> int:
    from gateway.doctor.findings import exit_status, render_json, render_text

    if args.json:
        print(render_json(findings, **context))
    else:
        print("\n".join(render_text(findings)))
    return exit_status(findings)


def cmd_doctor_service(args: argparse.Namespace) -> int:
    from gateway.doctor.service import ServiceQuery, diagnose_service

    findings = diagnose_service(ServiceQuery(args.name, args.admin, args.conf, args.timeout))
    return _print(findings, args, command="doctor service", service=args.name, admin=args.admin)


def cmd_doctor_sni(args: argparse.Namespace) -> int:
    from gateway.doctor.sni import SniQuery, diagnose_sni

    query = SniQuery(
        args.name or None, args.admin, args.conf, args.connect or bool(args.proxy), args.proxy, args.timeout
    )
    return _print(diagnose_sni(query), args, command="doctor sni", sni=args.name, admin=args.admin)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--admin", metavar="URL", help=ADMIN_HELP)
    parser.add_argument("-c", "--conf", help="the gateway's configuration (kong.conf syntax); KONG_* override it")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per request or connection (default 10)")
    parser.add_argument("--json", action="store_true", help="the findings as JSON")


def add_running_gateway_commands(doctor_sub: Any) -> None:
    """``doctor service NAME`` and ``doctor sni NAME`` under ``gateway doctor``."""
    service = doctor_sub.add_parser(
        "service",
        help="a running gateway's service: its upstream TLS profile, each value's origin, and the handshake it makes",
        description="Read the service's effective upstream TLS profile from the running gateway (GET "
        "/services/{NAME}/tls), rebuild it from the same rows (its certificates and CA certificates) with the "
        "gateway's compiler, and make the handshake the gateway makes to the service's upstream: the chain, the "
        "verification step by step, Kong's error-log line, the cause and the fix. The global settings "
        "(client_ssl_cert, proxy_ssl_*) come from -c CONF and KONG_*, as for gateway start: give the running "
        "gateway's. Exit status: 0 the gateway accepts the upstream, 1 a problem, 2 a usage error.",
    )
    service.add_argument("name", metavar="NAME", help="the service's name or id")
    _common(service)
    service.set_defaults(func=cmd_doctor_service)

    sni = doctor_sub.add_parser(
        "sni",
        help="which certificate the running gateway serves for an SNI, by which rule, and the client-certificate "
        "request",
        description="Ask the running gateway (GET /tls/served?sni=NAME) which certificate a handshake with that SNI "
        "gets and why (Kong's SNI order: exact, *.prefix, suffix.*, the * SNI, ssl_cert, the generated default), "
        "the names it covers, its expiry, and whether mtls-auth requests a client certificate with which CA names. "
        "--connect also makes the handshake and compares. Exit status: 0 no problem, 1 a problem, 2 a usage error.",
    )
    sni.add_argument("name", metavar="NAME", help="the SNI a client sends ('' for a client that sends none)")
    sni.add_argument(
        "--connect", action="store_true", help="also make a real handshake with that SNI and compare what is served"
    )
    sni.add_argument(
        "--proxy",
        metavar="HOST:PORT",
        help="the proxy's TLS listener for --connect (default: the first ssl proxy_listen entry, from GET /)",
    )
    _common(sni)
    sni.set_defaults(func=cmd_doctor_sni)
