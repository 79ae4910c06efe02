"""The real ``gateway`` process refuses what it would otherwise accept and ignore.

- A plugin this gateway does not run: refused by the Admin API, the declarative file at start, ``config parse`` and
  ``config db_import``, with Kong's ``plugin 'x' not enabled`` message; nothing is stored.
- A store that already holds such a plugin (written by an older version): ``gateway start`` exits 1, naming each row
  and the statement that removes them; once removed, the same store starts.
- The ``plugins`` setting: honoured when it names plugins this gateway runs, refused at start otherwise.
- Settings Kong would act on and this gateway cannot (an ``ssl`` Status API listener...): ``gateway start`` exits 1
  naming the key; the reference configuration, commented or with every default written out, still starts.
"""

from __future__ import annotations

import pathlib
import re
import sqlite3
import subprocess
from typing import Any

import httpx
import pytest

from gateway.entities import SCHEMAS
from gateway.store import open_database
from tests.fixtures.gateway_process import GATEWAY, GatewayProcess, make_gateway, running_gateway

CONF = pathlib.Path(__file__).parents[2] / "conf" / "gateway.conf"
RUNS = "this gateway runs only acl, mtls-auth, prometheus, tls-metadata-headers"


def not_enabled(name: str) -> str:
    return f"plugin '{name}' not enabled; add it to the 'plugins' configuration property ({RUNS})"


def start_fails(gw: GatewayProcess) -> subprocess.CompletedProcess[str]:
    """``gateway start`` that must exit 1 before serving (its output is returned for the message)."""
    args = [GATEWAY, "start", "-p", str(gw.prefix)] + (["-c", str(gw.conf)] if gw.conf is not None else [])
    out = subprocess.run(args, env=gw.env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "Gateway started" not in out.stdout
    return out


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([GATEWAY, *args], capture_output=True, text=True, timeout=30, env=env)


def _plugin_row(name: str, config: dict[str, Any], **scope: Any) -> dict[str, Any]:
    """A complete plugin row as an older store held it (written without today's validation)."""
    schema = SCHEMAS["plugins"]
    return schema.complete(schema.process_auto_fields({"name": name, "config": config, **scope}, "insert"))


def _old_store(path: pathlib.Path, *plugins: tuple[str, dict[str, Any], bool]) -> dict[str, Any]:
    """A SQLite store with a service, a route and ``plugins`` (name, config, on the route?) written as rows."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = open_database("sqlite", str(path))
    try:
        service = db.dao("services").insert({"name": "svc", "url": "http://127.0.0.1:9/"})
        route = db.dao("routes").insert({"name": "rt", "paths": ["/"], "service": {"id": service["id"]}})
        rows = [
            _plugin_row(name, config, **({"route": {"id": route["id"]}} if on_route else {}))
            for name, config, on_route in plugins
        ]
        db.load_rows({"services": [service], "routes": [route], "plugins": rows})
        return {"route": route, "plugins": rows}
    finally:
        db.close()


def test_a_store_holding_plugins_that_never_run_does_not_start(tmp_path: pathlib.Path) -> None:
    gw = make_gateway(tmp_path)
    old = _old_store(
        gw.prefix / "gateway.db", ("key-auth", {"key_names": ["apikey"]}, True), ("rate-limiting", {"minute": 5}, False)
    )
    key_auth, limiting = old["plugins"]
    first = min(old["plugins"], key=lambda row: row["id"])  # Kong names the first row it meets; rows are in id order
    out = start_fails(gw)
    db_path = gw.prefix / "gateway.db"
    assert out.stderr.startswith(
        f"Error: error building initial plugins: {first['name']} plugin is in use but not enabled ({RUNS})\n"
        f"the database {db_path} holds 2 plugin(s) that would never run:\n"
    ), out.stderr
    assert f"  key-auth (id {key_auth['id']}, route {old['route']['id']})\n" in out.stderr
    assert f"  rate-limiting (id {limiting['id']}, global)\n" in out.stderr
    assert not httpx_reachable(gw.admin_url)

    # the statement printed is the remedy: run it as the user would, and the same store starts
    statement = re.search(r'sqlite3 (\S+) "(DELETE FROM plugins WHERE id IN \([^)]*\))"', out.stderr)
    assert statement is not None, out.stderr
    assert statement.group(1) == str(db_path)
    with sqlite3.connect(statement.group(1)) as conn:
        conn.execute(statement.group(2))
    gw.start()
    try:
        assert httpx.get(f"{gw.admin_url}/plugins").json()["data"] == []
        assert httpx.get(f"{gw.admin_url}/routes/rt").status_code == 200
    finally:
        assert gw.stop() == 0


def test_the_plugins_setting_is_honoured_or_refused(tmp_path: pathlib.Path) -> None:
    refused = make_gateway(tmp_path / "refused", {"KONG_PLUGINS": "bundled, key-auth"})
    out = start_fails(refused)
    assert (
        f"Error: plugins: key-auth plugin is enabled but not installed; {RUNS}: remove 'key-auth' from the 'plugins' "
        "setting" in out.stderr
    )

    with running_gateway(tmp_path / "narrow", {"KONG_PLUGINS": "tls-metadata-headers"}) as gw:
        admin = httpx.Client(base_url=gw.admin_url, timeout=10)
        assert admin.get("/plugins/enabled").json() == {"enabled_plugins": ["tls-metadata-headers"]}
        assert admin.get("/").json()["configuration"]["plugins"] == ["tls-metadata-headers"]
        for name in ("mtls-auth", "acl"):
            res = admin.post("/plugins", json={"name": name, "config": {}})
            assert (res.status_code, res.json()["fields"]) == (400, {"name": not_enabled(name)})
        assert admin.post("/plugins", json={"name": "tls-metadata-headers"}).status_code == 201
        assert [p["name"] for p in admin.get("/plugins").json()["data"]] == ["tls-metadata-headers"]
        admin.close()

    # a stored mtls-auth that the setting no longer enables: the message offers both remedies
    gw = make_gateway(tmp_path / "disabled", {"KONG_PLUGINS": "tls-metadata-headers"})
    _old_store(gw.prefix / "gateway.db", ("mtls-auth", {"ca_certificates": []}, True))
    out = start_fails(gw)
    assert "mtls-auth plugin is in use but not enabled" in out.stderr
    assert "or enable mtls-auth in the 'plugins' setting (now: tls-metadata-headers)" in out.stderr


def test_admin_api_of_the_real_process_refuses_and_stores_nothing(tmp_path: pathlib.Path) -> None:
    with running_gateway(tmp_path) as gw:
        admin = httpx.Client(base_url=gw.admin_url, timeout=10)
        assert admin.post("/services", json={"name": "svc", "url": "http://127.0.0.1:9/"}).status_code == 201
        assert admin.post("/services/svc/routes", json={"name": "rt", "paths": ["/"]}).status_code == 201
        for path in ("/plugins", "/routes/rt/plugins", "/services/svc/plugins"):
            for name in ("cors", "key-auth", "acme", "rate-limiting"):
                res = admin.post(path, json={"name": name})
                assert res.status_code == 400
                assert res.json() == {
                    "code": 2,
                    "name": "schema violation",
                    "message": f"schema violation (name: {not_enabled(name)})",
                    "fields": {"name": not_enabled(name)},
                }
        assert admin.get("/plugins").json()["data"] == []
        root = admin.get("/").json()
        assert root["plugins"]["enabled_in_cluster"] == []
        admin.close()


KONG_YML_WITH_KEY_AUTH = """\
_format_version: "3.0"
services:
- name: svc
  url: http://127.0.0.1:9/
  routes:
  - name: rt
    paths: ["/"]
    plugins:
    - name: key-auth
      config:
        key_names: [apikey]
"""


def test_declarative_paths_refuse_a_plugin_not_run(tmp_path: pathlib.Path) -> None:
    kong_yml = tmp_path / "kong.yml"
    kong_yml.write_text(KONG_YML_WITH_KEY_AUTH)
    line = f"services[0].routes[0].plugins[0].name: {not_enabled('key-auth')}"

    dbless = make_gateway(tmp_path / "dbless", {"KONG_DATABASE": "off", "KONG_DECLARATIVE_CONFIG": str(kong_yml)})
    out = start_fails(dbless)
    assert f"failed loading declarative config file {kong_yml}" in out.stderr
    assert not_enabled("key-auth") in out.stderr

    parsed = run_cli("config", "parse", str(kong_yml), env=dbless.env)
    assert parsed.returncode == 1
    assert parsed.stderr == f"Error: failed parsing declarative configuration: {kong_yml}\n  {line}\n"

    # db_import into a store that holds data: refused, and the store is as it was
    gw = make_gateway(tmp_path / "import")
    store = gw.prefix / "gateway.db"
    _old_store(store)
    before = _export(store)
    imported = run_cli("config", "db_import", str(kong_yml), "-p", str(gw.prefix), env=gw.env)
    assert imported.returncode == 1
    assert imported.stderr == f"Error: failed importing declarative configuration: {kong_yml}\n  {line}\n"
    assert _export(store) == before


def test_config_parse_follows_the_plugins_setting(tmp_path: pathlib.Path) -> None:
    kong_yml = tmp_path / "kong.yml"
    kong_yml.write_text('_format_version: "3.0"\nplugins:\n- name: tls-metadata-headers\n')
    env = make_gateway(tmp_path).env
    assert run_cli("config", "parse", str(kong_yml), env=env).returncode == 0
    conf = tmp_path / "narrow.conf"
    conf.write_text("plugins = mtls-auth\n")
    narrowed = run_cli("config", "parse", str(kong_yml), "-c", str(conf), env=env)
    assert narrowed.returncode == 1
    assert f"plugins[0].name: {not_enabled('tls-metadata-headers')}" in narrowed.stderr


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"KONG_STATUS_LISTEN": "127.0.0.1:8100 ssl"},
            "status_listen = 127.0.0.1:8100 ssl is not supported: an HTTPS Status API listener is not implemented; "
            "list plain entries only",
        ),
        (
            {"KONG_ADMIN_LISTEN": "127.0.0.1:8444 http2 ssl"},
            "admin_listen = 127.0.0.1:8444 http2 ssl is not supported: an HTTPS Admin API listener is not "
            "implemented; list plain entries only",
        ),
        (
            {"KONG_PROXY_LISTEN": "127.0.0.1:8000 proxy_protocol"},
            "proxy_listen = 127.0.0.1:8000 proxy_protocol: the 'proxy_protocol' flag is not supported (this gateway "
            "does not read the PROXY protocol header)",
        ),
        (
            {"KONG_ADMIN_ERROR_LOG": "logs/admin_error.log"},
            "admin_error_log = logs/admin_error.log is not supported: the Admin API writes its error lines to "
            "proxy_error_log",
        ),
        ({"KONG_HEADERS": "server_tokens, X-Powered-By"}, "headers: invalid entry 'X-Powered-By'"),
        ({"KONG_PROXY_ACCESS_LOG": "logs/access.log combined"}, "proxy_access_log = logs/access.log combined is not"),
        ({"KONG_SSL_SESSION_CACHE_SIZE": "20m"}, "ssl_session_cache_size = 20m is not supported"),
    ],
    ids=["status_listen", "admin_ssl", "proxy_protocol", "admin_error_log", "headers", "log_format", "cache_size"],
)
def test_a_setting_that_would_be_ignored_stops_the_start(
    tmp_path: pathlib.Path, env: dict[str, str], message: str
) -> None:
    gw = make_gateway(tmp_path, env)
    out = start_fails(gw)
    assert out.stderr.startswith("Error: "), out.stderr
    assert message in out.stderr
    assert not httpx_reachable(gw.admin_url)
    assert not (gw.prefix / "pids" / "gateway.pid").exists()


def test_the_reference_conf_starts_commented_and_with_every_default_written_out(tmp_path: pathlib.Path) -> None:
    """Kong's defaults stay valid: ``status_listen = off`` (ours), ``plugins = bundled``, ``admin_error_log`` at its
    default, ``ssl_session_cache_size = 10m``... (the listeners and prefix come from the environment / ``-p``)."""
    written = "\n".join(
        re.sub(r"^#([a-z_0-9]+ = .*)$", r"\1", line)
        for line in CONF.read_text().splitlines()
        if not re.match(r"^#(prefix|proxy_listen|admin_listen) = ", line)
    )
    for name, text in (("commented", CONF.read_text()), ("written", written)):
        (tmp_path / name).mkdir()
        with running_gateway(tmp_path / name, conf_text=text) as gw:
            root = httpx.get(gw.admin_url, timeout=10).json()
            assert root["configuration"]["status_listen"] == []
            assert root["configuration"]["plugins"] == ["bundled"]
            assert sorted(root["plugins"]["available_on_server"]) == [
                "acl",
                "mtls-auth",
                "prometheus",
                "tls-metadata-headers",
            ]


def httpx_reachable(url: str) -> bool:
    try:
        httpx.get(url, timeout=2)
    except httpx.TransportError:
        return False
    return True


def _export(path: pathlib.Path) -> dict[str, Any]:
    db = open_database("sqlite", str(path))
    try:
        return db.export()
    finally:
        db.close()


def test_a_plugins_change_on_sighup_is_reported_and_not_half_applied(tmp_path: pathlib.Path) -> None:
    """The enabled set is fixed at start (the stored rows were checked against it): a reload that changes ``plugins``
    keeps it, says so, and ``GET /`` keeps showing the value in force."""
    import signal

    from tests.integration.test_cli_lifecycle import _wait_for_log

    with running_gateway(tmp_path, conf_text="plugins = bundled\n") as gw:
        assert gw.conf is not None
        gw.conf.write_text("plugins = tls-metadata-headers\n")
        gw.signal(signal.SIGHUP)
        _wait_for_log(gw.error_log, "reconfiguration done")
        assert "[config] plugins changes need a restart; keeping the enabled plugins" in gw.error_log.read_text()
        enabled = httpx.get(f"{gw.admin_url}/plugins/enabled", timeout=10).json()
        assert enabled == {"enabled_plugins": ["acl", "mtls-auth", "prometheus", "tls-metadata-headers"]}
        assert httpx.get(gw.admin_url, timeout=10).json()["configuration"]["plugins"] == ["bundled"]
