"""``gateway`` command line, shaped like Kong's (``kong start|stop|reload|check|version|config``), plus ``doctor``.

``gateway start`` runs in the foreground, as Kong does in containers. Exit codes: 0 success, 1 a
configuration or start-up error (the message says which key or file), 2 a usage error (argparse).

``gateway --help`` (or ``gateway help [COMMAND]``) teaches rather than lists: each command with a one-line example,
the ``KONG_*`` rule, the default prefix and ports (read from ``gateway.settings.SPECS``, so they cannot drift).

``gateway check CONF`` loads the settings and then every certificate, key and CA file they name, with the loaders
``start`` uses (``gateway.doctor.conf``): a problem is what ``start`` would refuse. ``gateway doctor cert FILE``
explains a PEM bundle in words (``gateway.doctor.cert``), ``gateway doctor upstream HOST:PORT`` the handshake the
gateway would make to an upstream (``gateway.doctor.upstream``); ``doctor service NAME`` and ``doctor sni NAME`` ask a
running gateway (``gateway.doctor.commands``): exit 0 when nothing is a problem (warnings alone
pass), 1 when something is. ``gateway demo`` runs the guided walk through the four TLS layers (``gateway.demo``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any, cast

from gateway.compiled import describe
from gateway.settings import SPECS, ConfigError, Settings, load_settings
from gateway.version import KONG_VERSION, __version__

__all__ = ["main"]


def _overrides(args: argparse.Namespace) -> dict[str, str]:
    overrides = {}
    if getattr(args, "prefix", None):
        overrides["prefix"] = os.path.abspath(args.prefix)
    if getattr(args, "vv", False):
        overrides["log_level"] = "debug"
    elif getattr(args, "v", False):
        overrides["log_level"] = "info"
    return overrides


def _load(args: argparse.Namespace) -> Settings:
    conf = getattr(args, "conf", None)
    return load_settings(conf, overrides=_overrides(args))


def _err(message: str) -> int:
    print(f"Error: {message}", file=sys.stderr)
    return 1


# --------------------------------------------------------------------------------------------- commands
def cmd_start(args: argparse.Namespace) -> int:
    from gateway.runtime.lifecycle import Gateway, StartupError

    try:
        settings = _load(args)
    except ConfigError as exc:
        return _err(str(exc))

    async def run() -> int:
        gateway = Gateway(settings, args.conf, _overrides(args))
        try:
            await gateway.start()
        except StartupError as exc:
            await gateway.stop(drain_timeout=0)
            return _err(str(exc))
        print(f"Gateway started (prefix {settings.prefix}): {_listening(settings)}", flush=True)
        await gateway.wait_stopped()
        return 0

    return _run_loop(run())


def _listening(settings: Settings) -> str:
    """``proxy 0.0.0.0:8000, 0.0.0.0:8443 ssl; admin 127.0.0.1:8001``: where to send the first request."""
    from gateway.runtime.listen_errors import render_listener

    parts = []
    for name, listeners in (("proxy", settings.proxy_listen), ("admin", settings.admin_listen)):
        parts.append(f"{name} {', '.join(render_listener(listener) for listener in listeners) or 'off'}")
    return "; ".join(parts)


def _run_loop(coro: Any) -> int:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency; keep a clear fallback
        return int(asyncio.run(coro))
    return int(uvloop.run(coro))


def _signal_running(args: argparse.Namespace, sig: signal.Signals, verb: str) -> int:
    try:
        settings = _load(args)
    except ConfigError as exc:
        return _err(str(exc))
    from gateway.runtime import pidfile

    pid = pidfile.read_pid(settings.prefix)
    try:
        if pid is None or not pidfile.is_gateway(pid):  # never signal a process that took a dead gateway's pid
            raise ProcessLookupError
        os.kill(pid, sig)
    except OSError:
        return _err(f"gateway is not running in {settings.prefix}")
    print(f"Gateway {verb}")
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    return _signal_running(args, signal.SIGTERM, "stopped")


def cmd_reload(args: argparse.Namespace) -> int:
    return _signal_running(args, signal.SIGHUP, "reloaded")


def cmd_check(args: argparse.Namespace) -> int:
    from gateway.doctor.conf import check_files
    from gateway.doctor.findings import Severity, exit_status

    try:
        settings = load_settings(args.conf)
    except ConfigError as exc:
        return _err(str(exc))
    from gateway.runtime.notices import startup_warnings

    for warning in startup_warnings(settings):
        if warning.key != "client_ssl":  # the doctor's findings below say it, with the file checks
            print(f"Warning: {warning.text}", file=sys.stderr)
    findings = check_files(settings)
    for finding in findings:
        word = "Error" if finding.severity is Severity.PROBLEM else "Warning"
        print(f"{word}: {finding.text()}", file=sys.stderr)
    status = exit_status(findings)
    if status == 0:
        print(f"configuration at {args.conf} is valid")
    return status


def cmd_doctor_cert(args: argparse.Namespace) -> int:
    from gateway.doctor.cert import diagnose
    from gateway.doctor.findings import exit_status, render_json, render_text

    findings = diagnose(args.file, args.key, args.ca, args.name)
    if args.json:
        context = {"command": "doctor cert", "file": args.file, "key": args.key, "ca": args.ca, "name": args.name}
        print(render_json(findings, **context))
    else:
        print("\n".join(render_text(findings)))
    return exit_status(findings)


def cmd_doctor_upstream(args: argparse.Namespace) -> int:
    from gateway.doctor.findings import exit_status, render_json, render_text
    from gateway.doctor.upstream import UpstreamQuery, diagnose_upstream, parse_target

    try:
        host, port = parse_target(args.target)
    except ValueError as exc:
        print(f"gateway doctor upstream: error: {exc}", file=sys.stderr)
        return 2
    if (args.cert is None) != (args.key is None):
        print("gateway doctor upstream: error: --cert and --key go together", file=sys.stderr)
        return 2
    query = UpstreamQuery(host, port, args.sni, args.ca, args.cert, args.key, args.depth, args.conf, args.timeout)
    findings = diagnose_upstream(query)
    if args.json:
        print(render_json(findings, command="doctor upstream", target=args.target, sni=args.sni, ca=args.ca))
    else:
        print("\n".join(render_text(findings)))
    return exit_status(findings)


def cmd_demo(args: argparse.Namespace) -> int:
    from gateway.demo.run import run_demo
    from gateway.demo.steps import STEPS

    if not 1 <= args.step <= len(STEPS):
        print(f"gateway demo: error: --step is 1 to {len(STEPS)}", file=sys.stderr)
        return 2
    return run_demo(args.step, args.keep)


def cmd_version(args: argparse.Namespace) -> int:
    if args.all:
        from OpenSSL import SSL

        print(f"Kong (compatible): {KONG_VERSION}")
        print(f"gateway: {__version__}")
        print(f"Python: {sys.version.split()[0]}")
        print(f"OpenSSL: {SSL.OpenSSL_version(SSL.OPENSSL_VERSION).decode()}")
        print(f"request path: {describe()}")
    else:
        print(f"{__version__} (Kong {KONG_VERSION} compatible)")
    return 0


def _declarative_errors(exc: Exception) -> list[str]:
    """One line per error: ``services[0].routes[0].plugins[0].name: <message>`` for a file that does not validate."""
    from gateway.entities.errors import DeclarativeConfigError, EntityError, flatten_field_errors

    if isinstance(exc, DeclarativeConfigError) and exc.paths:
        return exc.paths
    if isinstance(exc, EntityError) and exc.fields:
        return flatten_field_errors(exc.fields)
    return [getattr(exc, "message", None) or str(exc)]


def cmd_config(args: argparse.Namespace) -> int:
    """``config parse`` / ``config db_import``: the file is validated with the plugins the settings enable (``-c``
    and ``KONG_*``, as ``kong config`` reads them), so a plugin this gateway does not run is refused here too."""
    from gateway.entities.plugin_configs import enable_plugins
    from gateway.runtime.lifecycle import StartupError, load_declarative_file
    from gateway.store import open_database

    try:
        settings = _load(args)
    except ConfigError as exc:
        return _err(str(exc))
    enable_plugins(settings.enabled_plugins)
    try:
        data = load_declarative_file(args.file)
    except StartupError as exc:
        return _err(str(exc))
    if args.config_command == "parse":
        db = open_database("off", None)
        try:
            db.replace_all(data)
        except Exception as exc:
            print(f"Error: failed parsing declarative configuration: {args.file}", file=sys.stderr)
            for line in _declarative_errors(exc):
                print(f"  {line}", file=sys.stderr)
            return 1
        print("parse successful")
        return 0
    # db_import
    if settings.database == "off":
        return _err("db_import needs a database (database = sqlite or postgres)")
    os.makedirs(settings.prefix, exist_ok=True)
    from gateway.store import StoreUnavailable, open_store

    try:
        db = open_store(settings)
    except StoreUnavailable as exc:
        return _err(str(exc))
    try:
        db.replace_all(data)
    except Exception as exc:
        print(f"Error: failed importing declarative configuration: {args.file}", file=sys.stderr)
        for line in _declarative_errors(exc):
            print(f"  {line}", file=sys.stderr)
        return 1
    finally:
        db.close()
    print("parse successful")
    print("import successful")
    return 0


def cmd_migrations(args: argparse.Namespace) -> int:
    """Kong's ``kong migrations`` (``gateway.store.migrations`` has the messages and exit codes)."""
    from gateway.store.migrations import run_command

    try:
        settings = _load(args)
    except ConfigError as exc:
        return _err(str(exc))
    return run_command(args.migrations_command, settings, yes=args.yes)


# --------------------------------------------------------------------------------------------- parser
#: every command: its one-line summary and an example, for ``gateway --help`` and the command's own help
COMMANDS: tuple[tuple[str, str, str], ...] = (
    ("start", "run the gateway in the foreground; Ctrl-C / SIGTERM drain and stop it", "gateway start -p servroot"),
    ("stop", "stop the gateway running in a prefix", "gateway stop -p servroot"),
    ("reload", "re-read certificate settings and the declarative file (SIGHUP)", "gateway reload -p servroot"),
    ("check", "validate a configuration file and the files it names", "gateway check conf/gateway.conf"),
    (
        "doctor",
        "explain a PEM bundle, an upstream's TLS, a running gateway's service or SNI, in words",
        "gateway doctor cert site.crt --key site.key --ca root.crt",
    ),
    ("demo", "a guided walk through the four TLS layers, self-contained", "gateway demo --step 9"),
    ("config", "validate a kong.yml, or load it into the database", "gateway config parse conf/kong.yml"),
    ("migrations", "bootstrap, upgrade, list or reset the database's schema", "gateway migrations bootstrap"),
    ("version", "print the version (--all: and Python's, OpenSSL's)", "gateway version --all"),
    ("help", "this text, or a command's", "gateway help start"),
)


def _default(key: str) -> str:
    return SPECS[key].default


def _overview() -> str:
    width = max(len(name) for name, _, _ in COMMANDS)
    lines = ["commands (gateway help COMMAND, or COMMAND --help, for its options):"]
    for name, summary, example in COMMANDS:
        lines.append(f"  {name:<{width}}  {summary}")
        lines.append(f"  {'':<{width}}    e.g. {example}")
    return "\n".join(lines)


def _epilog() -> str:
    return f"""settings:
  Every kong.conf key (conf/gateway.conf lists them all with their defaults) is read from the file given
  with -c, and can be overridden from the environment as KONG_<KEY IN CAPITALS>, Kong's rule:
    KONG_PROXY_LISTEN='127.0.0.1:18000, 127.0.0.1:18443 ssl' KONG_ADMIN_LISTEN=127.0.0.1:18001 \\
      gateway start -p servroot
  An unknown KONG_* variable is ignored with a warning; an unknown key in the file is an error.

defaults:
  prefix        {_default("prefix")} (-p PREFIX; `make run` uses ./servroot): the SQLite store, logs/,
                pids/gateway.pid
  proxy_listen  {_default("proxy_listen")}
  admin_listen  {_default("admin_listen")}
  database      {_default("database")} (a file under the prefix); postgres = one database shared by several
                nodes (gateway migrations bootstrap first); off = DB-less with declarative_config

`python -m gateway ...` is the same command (inside the virtualenv: .venv/bin/python -m gateway)."""


def _add(sub: Any, name: str, description: str | None = None) -> argparse.ArgumentParser:
    summary, example = next((s, e) for n, s, e in COMMANDS if n == name)
    return cast(
        argparse.ArgumentParser,
        sub.add_parser(
            name,
            prog=f"gateway {name}",
            description=f"{description or summary}\n\nexample:\n  {example}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        ),
    )


def conf_and_prefix(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--conf", help="configuration file (kong.conf syntax); KONG_* variables override it")
    p.add_argument("-p", "--prefix", help=f"the prefix directory (default: the prefix setting, {_default('prefix')})")


def _add_migrations(sub: Any) -> None:
    migrations = _add(
        sub,
        "migrations",
        "Manage the database's schema, as 'kong migrations': bootstrap (once, before the first start on postgres),\n"
        "up (new migrations), finish, list (exit 3: needs bootstrap, 5: new migrations), reset (erases everything).",
    )
    migrations.add_argument("migrations_command", choices=("bootstrap", "up", "finish", "list", "reset"))
    migrations.add_argument("-y", "--yes", action="store_true", help="assume yes to prompts (reset)")
    conf_and_prefix(migrations)
    migrations.set_defaults(func=cmd_migrations)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gateway",
        usage="gateway <command> [options]",
        description="Kong-compatible TLS reference gateway: Kong's Admin API, kong.yml and kong.conf settings, "
        "Kong's TLS model.\n\n" + _overview(),
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="<command>", help=argparse.SUPPRESS)

    start = _add(
        sub,
        "start",
        "Run the gateway in the foreground (as Kong in a container). It prints 'Gateway started' once the proxy\n"
        "and the Admin API accept; SIGTERM / Ctrl-C drain in-flight requests and exit 0, SIGHUP reloads,\n"
        "SIGUSR1 reopens the logs. A second start on a prefix whose gateway runs is refused.",
    )
    conf_and_prefix(start)
    start.add_argument("--v", action="store_true", help="verbose (log_level = info)")
    start.add_argument("--vv", action="store_true", help="debug (log_level = debug)")
    start.set_defaults(func=cmd_start)

    for name, func in (("stop", cmd_stop), ("reload", cmd_reload)):
        p = _add(sub, name)
        conf_and_prefix(p)
        p.set_defaults(func=func)

    check = _add(sub, "check")
    check.add_argument("conf", help="configuration file")
    check.set_defaults(func=cmd_check)

    doctor = _add(sub, "doctor")
    doctor_sub = doctor.add_subparsers(dest="doctor_command", required=True)
    cert = doctor_sub.add_parser(
        "cert",
        help="explain a PEM certificate bundle: order, missing or extra certificates, key, dates, names, depth",
        description="Explain a PEM bundle. Exit status: 0 nothing is a problem, 1 a problem, 2 a usage error.",
    )
    cert.add_argument("file", help="PEM bundle: the leaf, then its intermediates")
    cert.add_argument("--key", help="the private key meant for the leaf")
    cert.add_argument("--ca", metavar="CAFILE", help="trusted CAs: verify as OpenSSL would and say the depth needed")
    cert.add_argument("--name", metavar="HOST", help="a host name the leaf must cover")
    cert.add_argument("--json", action="store_true", help="the findings as JSON")
    cert.set_defaults(func=cmd_doctor_cert)
    _add_doctor_upstream(doctor_sub)
    from gateway.doctor.commands import add_running_gateway_commands

    add_running_gateway_commands(doctor_sub)

    _add_demo(sub)

    version = _add(sub, "version")
    version.add_argument("-a", "--all", action="store_true", help="versions of the parts too")
    version.set_defaults(func=cmd_version)

    config = _add(sub, "config")
    config_sub = config.add_subparsers(dest="config_command", required=True)
    parse = config_sub.add_parser("parse", help="validate a declarative file")
    parse.add_argument("file")
    parse.add_argument("-c", "--conf", help="configuration file (kong.conf syntax): its 'plugins' setting applies")
    parse.set_defaults(func=cmd_config)
    db_import = config_sub.add_parser("db_import", help="load a declarative file into the database")
    db_import.add_argument("file")
    conf_and_prefix(db_import)
    db_import.set_defaults(func=cmd_config)

    _add_migrations(sub)

    help_ = _add(sub, "help")
    help_.add_argument("topic", nargs="?", metavar="COMMAND", help="the command to explain")
    help_.set_defaults(func=lambda args: cmd_help(parser, sub, args))
    return parser


def _add_demo(sub: Any) -> None:
    demo = _add(
        sub,
        "demo",
        "A guided walk through Kong's four TLS layers on this machine alone: a throwaway PKI, the gateway and three\n"
        "TLS upstreams on free loopback ports, then eleven steps, each printed with the Admin API calls as curl\n"
        "lines and its outcome (step N: ok / FAILED). Cleans up after itself. Exit status 0 when every step gave\n"
        "its expected outcome.",
    )
    demo.add_argument("--step", type=int, default=1, metavar="N", help="start at step N (earlier steps run quietly)")
    demo.add_argument("--keep", action="store_true", help="keep the gateway running after the last step (Ctrl-C)")
    demo.set_defaults(func=cmd_demo)


def _add_doctor_upstream(doctor_sub: Any) -> None:
    upstream = doctor_sub.add_parser(
        "upstream",
        help="the handshake the gateway would make to an upstream: chain, verification, log line, cause and fix",
        description="Connect to an upstream as a service with tls_verify = true would (the options stand for the "
        "service's fields; the rest comes from -c CONF and KONG_*). Exit status: 0 the gateway accepts it, 1 it "
        "refuses it, 2 a usage error.",
    )
    upstream.add_argument("target", metavar="HOST:PORT", help="the upstream, as the service's host and port")
    upstream.add_argument("--sni", metavar="NAME", help="the name sent and checked ($upstream_host; default HOST)")
    upstream.add_argument("--ca", metavar="CAFILE", help="trusted CAs, as the service's ca_certificates")
    upstream.add_argument("--cert", metavar="C", help="client certificate chain, as the service's client_certificate")
    upstream.add_argument("--key", metavar="K", help="the client certificate's key")
    upstream.add_argument("--depth", metavar="N", type=int, help="as the service's tls_verify_depth")
    upstream.add_argument("-c", "--conf", help="the gateway's configuration (proxy_ssl_*, client_ssl_cert...)")
    upstream.add_argument("--timeout", type=float, default=10.0, help="seconds per connection (default 10)")
    upstream.add_argument("--json", action="store_true", help="the findings as JSON")
    upstream.set_defaults(func=cmd_doctor_upstream)


def cmd_help(parser: argparse.ArgumentParser, sub: Any, args: argparse.Namespace) -> int:
    """``gateway help`` = ``gateway --help``; ``gateway help start`` = ``gateway start --help``."""
    if args.topic is None:
        parser.print_help()
        return 0
    if args.topic not in sub.choices:
        return _err(f"no command '{args.topic}'; the commands are {', '.join(name for name, _, _ in COMMANDS)}")
    sub.choices[args.topic].print_help()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    if not (sys.argv[1:] if argv is None else argv):  # a bare `gateway`: the whole help, not argparse's one line
        parser.print_help(sys.stderr)
        return 2
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
