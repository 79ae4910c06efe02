"""The scenarios (issue 7) and how one is run: both proxies up, same load, alternating A/B, medians.

Topology of every scenario: load generator -> proxy (the gateway or nginx, one worker each, or one per core in
the ``-all`` rows) -> the shared nginx upstream. Only the proxy differs between A and B; the load, the certificates,
the upstream and the verify settings are the same (``nginx_configs`` states the equivalence rules).

========  =====================================================================================================
S1        HTTP -> HTTP, keepalive both sides (wrk)
S2        HTTPS -> HTTP, keepalive both sides (wrk)
S3        HTTPS -> HTTPS with ``tls_verify``, CA set and client certificate upstream, keepalive both sides (wrk)
S4        S3 + client certificate downstream: mtls-auth vs ``ssl_verify_client on`` (``ab -k -E``)
S5-rsa    a new TLS connection per request, full handshakes (tickets and session cache off), RSA-2048 (wrk,
          ``Connection: close``); the upstream side stays pooled plain HTTP, so handshakes are the work
S5-ecdsa  the same with ECDSA P-256
S6        S3 with the upstream pool off (``upstream_keepalive_pool_size = 0``; nginx without ``keepalive``)
S7        S3 with 1 MiB response bodies (MB/s)
S1-all    S1 with all cores on both sides: nginx ``worker_processes auto``, the gateway ``worker_processes = auto``
S3-all    S3 with all cores on both sides
S5-ecdsa-all  S5-ecdsa with all cores on both sides
========  =====================================================================================================
"""

from __future__ import annotations

import json
import statistics
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.loadgen import LoadResult, run_ab, run_wrk
from benchmarks.nginx_configs import proxy_conf
from benchmarks.pki import Pki
from benchmarks.processes import Processes, Server, free_port, probe

__all__ = [
    "FLOOR_SCENARIOS",
    "SCENARIOS",
    "Environment",
    "Measurement",
    "Scenario",
    "ScenarioResult",
    "SideResult",
    "rotated_rounds",
    "run_scenario",
]


@dataclass(frozen=True)
class Scenario:
    """What one scenario puts in front of the load generator."""

    key: str
    title: str
    downstream_tls: str | None = None  # None: plain HTTP; "rsa"/"ecdsa": the served chain
    upstream_tls: bool = False  # verified mTLS upstream (tls_verify, CA, client certificate)
    pool: bool = True
    verify_client: bool = False
    full_handshakes: bool = False
    path: str = "/"
    tool: str = "wrk"
    connections: int = 50
    headers: tuple[str, ...] = ()
    metric: str = "req/s"  # what the ratio compares: req/s, handshakes/s (= req/s), MB/s
    all_cores: bool = False  # both proxies with one worker per core instead of one worker


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("S1", "HTTP -> HTTP keepalive"),
    Scenario("S2", "HTTPS -> HTTP keepalive", downstream_tls="ecdsa"),
    Scenario("S3", "HTTPS -> verified mTLS HTTPS, keepalive", downstream_tls="ecdsa", upstream_tls=True),
    Scenario(
        "S4",
        "S3 + client certificate downstream",
        downstream_tls="ecdsa",
        upstream_tls=True,
        verify_client=True,
        tool="ab",
    ),
    Scenario(
        "S5-rsa",
        "new TLS connection per request, RSA-2048",
        downstream_tls="rsa",
        full_handshakes=True,
        headers=("Connection: close",),
        metric="handshakes/s",
    ),
    Scenario(
        "S5-ecdsa",
        "new TLS connection per request, ECDSA P-256",
        downstream_tls="ecdsa",
        full_handshakes=True,
        headers=("Connection: close",),
        metric="handshakes/s",
    ),
    Scenario("S6", "S3 with the upstream pool off", downstream_tls="ecdsa", upstream_tls=True, pool=False),
    Scenario(
        "S7",
        "S3 with 1 MiB responses",
        downstream_tls="ecdsa",
        upstream_tls=True,
        path="/big",
        connections=10,
        metric="MB/s",
    ),
    Scenario("S1-all", "S1 with all cores", all_cores=True),
    Scenario("S3-all", "S3 with all cores", downstream_tls="ecdsa", upstream_tls=True, all_cores=True),
    Scenario(
        "S5-ecdsa-all",
        "S5-ecdsa with all cores",
        downstream_tls="ecdsa",
        full_handshakes=True,
        headers=("Connection: close",),
        metric="handshakes/s",
        all_cores=True,
    ),
)


#: the scenarios the floor (``floor.py``: GETs, plain or TLS, verified mTLS upstream, ``Connection: close``
#: answered with full handshakes) can stand in for
FLOOR_SCENARIOS = frozenset({"S1", "S2", "S3", "S5-rsa", "S5-ecdsa"})


@dataclass(frozen=True)
class Environment:
    """What every scenario shares: the working directory, the certificates and the upstream's ports."""

    workdir: Path
    pki: dict[str, Pki]  # by key type
    pki_dir: Path
    upstream_http: int
    upstream_https: int
    upstream_mtls: int


@dataclass
class Measurement:
    """One load run against one proxy, with the server's CPU and memory around it."""

    load: LoadResult
    cpu_seconds: float
    peak_rss_kib: int

    @property
    def cpu_per_10k(self) -> float:
        return self.cpu_seconds / self.load.requests * 10_000 if self.load.requests else float("nan")

    @property
    def cpu_us_per_request(self) -> float:
        return self.cpu_seconds / self.load.requests * 1e6 if self.load.requests else float("nan")


@dataclass
class SideResult:
    """All runs of one proxy in one scenario, and their medians."""

    runs: list[Measurement] = field(default_factory=list)

    def median(self, value: Callable[[Measurement], float]) -> float:
        return statistics.median(value(m) for m in self.runs) if self.runs else float("nan")

    @property
    def rps(self) -> float:
        return self.median(lambda m: m.load.rps)

    @property
    def mb_per_s(self) -> float:
        return self.median(lambda m: m.load.mb_per_s)

    @property
    def p50_ms(self) -> float:
        return self.median(lambda m: m.load.p50_ms)

    @property
    def p99_ms(self) -> float:
        return self.median(lambda m: m.load.p99_ms)

    @property
    def cpu_per_10k(self) -> float:
        return self.median(lambda m: m.cpu_per_10k)

    @property
    def cpu_us_per_request(self) -> float:
        return self.median(lambda m: m.cpu_us_per_request)

    @property
    def peak_rss_mib(self) -> float:
        return max((m.peak_rss_kib for m in self.runs), default=0) / 1024

    def headline(self, metric: str) -> float:
        return self.mb_per_s if metric == "MB/s" else self.rps


@dataclass
class ScenarioResult:
    scenario: Scenario
    gateway: SideResult = field(default_factory=SideResult)
    nginx: SideResult = field(default_factory=SideResult)
    #: the floor's runs (``floor.py``), for the scenarios in ``FLOOR_SCENARIOS``; None elsewhere
    floor: SideResult | None = None

    @property
    def ratio(self) -> float:
        metric = self.scenario.metric
        base = self.nginx.headline(metric)
        return self.gateway.headline(metric) / base if base else float("nan")

    @property
    def floor_ratio(self) -> float:
        """The floor's headline figure / nginx's (nan without a floor)."""
        metric = self.scenario.metric
        base = self.nginx.headline(metric)
        return self.floor.headline(metric) / base if self.floor is not None and base else float("nan")

    @property
    def cpu_ratio(self) -> float:
        """nginx's CPU per request / the gateway's: the throughput ratio each would reach on a core of its own."""
        gateway = self.gateway.cpu_per_10k
        return self.nginx.cpu_per_10k / gateway if gateway else float("nan")

    def to_json(self) -> dict[str, object]:
        def side(result: SideResult) -> dict[str, object]:
            return {
                "rps": result.rps,
                "mb_per_s": result.mb_per_s,
                "p50_ms": result.p50_ms,
                "p99_ms": result.p99_ms,
                "cpu_per_10k": result.cpu_per_10k,
                "cpu_us_per_request": result.cpu_us_per_request,
                "peak_rss_mib": result.peak_rss_mib,
                "runs_rps": [m.load.rps for m in result.runs],
            }

        out: dict[str, object] = {
            "key": self.scenario.key,
            "ratio": self.ratio,
            "cpu_ratio": self.cpu_ratio,
            "gateway": side(self.gateway),
            "nginx": side(self.nginx),
        }
        if self.floor is not None:
            out["floor_ratio"] = self.floor_ratio
            out["floor"] = side(self.floor)
        return out


# ---------------------------------------------------------------------------------------------- the gateway side


def gateway_config(
    scenario: Scenario, env: Environment, global_plugins: Sequence[Mapping[str, object]] = ()
) -> dict[str, object]:
    """The DB-less ``kong.yml`` (as JSON, which is YAML) of the gateway for ``scenario``, with ``global_plugins``
    (plugin entities without a scope, e.g. ``{"name": "prometheus", "config": {...}}``) added."""
    ca_id, cert_id = str(uuid.uuid4()), str(uuid.uuid4())
    pki = env.pki["ecdsa"]
    service: dict[str, object] = {"name": "bench"}
    config: dict[str, object] = {"_format_version": "3.0"}
    if scenario.upstream_tls:
        config["ca_certificates"] = [{"id": ca_id, "cert": pki.pems["root"]}]
        config["certificates"] = [{"id": cert_id, "cert": pki.pems["client_chain"], "key": pki.pems["client_key"]}]
        service.update(
            url=f"https://localhost:{env.upstream_mtls}/",
            tls_verify=True,
            ca_certificates=[ca_id],
            client_certificate={"id": cert_id},
        )
    else:
        service["url"] = f"http://127.0.0.1:{env.upstream_http}/"
    route: dict[str, object] = {"name": "bench", "paths": ["/"]}
    if scenario.verify_client:
        if "ca_certificates" not in config:
            config["ca_certificates"] = [{"id": ca_id, "cert": pki.pems["root"]}]
        route["plugins"] = [
            {
                "name": "mtls-auth",
                "config": {"ca_certificates": [ca_id], "skip_consumer_lookup": True, "revocation_check_mode": "SKIP"},
            }
        ]
    service["routes"] = [route]
    config["services"] = [service]
    if global_plugins:
        config["plugins"] = [dict(plugin) for plugin in global_plugins]
    return config


def start_gateway(
    procs: Processes,
    scenario: Scenario,
    env: Environment,
    source: Path | None = None,
    name: str = "gateway",
    extra_env: Mapping[str, str] | None = None,
    global_plugins: Sequence[Mapping[str, object]] = (),
    python_args: Sequence[str] = (),
) -> Server:
    """The gateway for ``scenario`` (``source``: run another copy of the ``gateway`` package, see ``compare``;
    ``extra_env``: settings or environment added last, e.g. ``KONG_WORKER_PROCESSES=2`` for the soak;
    ``global_plugins``: plugins configured globally, see ``compare --plugin``; ``python_args``: see
    ``Processes.gateway``)."""
    prefix = env.workdir / scenario.key / name
    prefix.mkdir(parents=True, exist_ok=True)
    kong_yml = prefix / "kong.yml"
    kong_yml.write_text(json.dumps(gateway_config(scenario, env, global_plugins), indent=1))
    port = free_port()
    settings = {
        "KONG_DATABASE": "off",
        "KONG_DECLARATIVE_CONFIG": str(kong_yml),
        "KONG_PROXY_LISTEN": f"127.0.0.1:{port}" + (" ssl" if scenario.downstream_tls else ""),
        "KONG_ADMIN_LISTEN": f"127.0.0.1:{free_port()}",
        "KONG_PROXY_ACCESS_LOG": "off",
        "KONG_LOG_LEVEL": "notice",
        # one worker, as nginx's worker_processes 1; or one per core, as nginx's auto
        "KONG_WORKER_PROCESSES": "auto" if scenario.all_cores else "1",
    }
    if scenario.downstream_tls is not None:
        pki = env.pki[scenario.downstream_tls]
        settings["KONG_SSL_CERT"] = str(pki.server_chain)
        settings["KONG_SSL_CERT_KEY"] = str(pki.server_key)
    if scenario.full_handshakes:
        settings["KONG_SSL_SESSION_TICKETS"] = "off"
        settings["KONG_SSL_SESSION_CACHE_SIZE"] = "0"
    if not scenario.pool:
        settings["KONG_UPSTREAM_KEEPALIVE_POOL_SIZE"] = "0"
    settings.update(extra_env or {})
    return procs.gateway(prefix, settings, port, source, python_args=python_args)


def start_nginx_proxy(procs: Processes, scenario: Scenario, env: Environment) -> Server:
    port = free_port()
    conf = proxy_conf(
        env.workdir / scenario.key / "nginx",
        port,
        downstream_tls=scenario.downstream_tls,
        pki_dir=env.pki_dir,
        upstream_port=env.upstream_mtls if scenario.upstream_tls else env.upstream_http,
        upstream_tls=scenario.upstream_tls,
        keepalive=scenario.pool,
        verify_client=scenario.verify_client,
        full_handshakes=scenario.full_handshakes,
        all_cores=scenario.all_cores,
    )
    return procs.nginx(env.workdir / scenario.key / "nginx", conf, port)


def start_floor(procs: Processes, scenario: Scenario, env: Environment) -> Server:
    """The floor (``floor.py``) configured as ``scenario``'s proxy: same certificates, same upstream, same checks."""
    port = free_port()
    pki = env.pki["ecdsa"]
    args = [str(env.upstream_mtls if scenario.upstream_tls else env.upstream_http)]
    if scenario.downstream_tls is not None:
        served = env.pki[scenario.downstream_tls]
        args += ["--cert", str(served.server_chain), "--key", str(served.server_key)]
        if scenario.full_handshakes:
            args.append("--full-handshakes")
    if scenario.upstream_tls:
        args += ["--upstream-tls", "--ca", str(pki.root), "--client-cert", str(pki.client_chain)]
        args += ["--client-key", str(pki.client_key), "--upstream-name", "localhost"]
    log = env.workdir / scenario.key / "floor.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    return procs.floor(args, port, log)


# ---------------------------------------------------------------------------------------------- running


def url_of(scenario: Scenario, server: Server) -> str:
    scheme = "https" if scenario.downstream_tls else "http"
    return f"{scheme}://127.0.0.1:{server.port}{scenario.path}"


def drive(scenario: Scenario, env: Environment, server: Server, duration: float) -> Measurement:
    """One bounded load run against ``server``, with its CPU time and peak RSS around it."""
    before = server.stats()
    url = url_of(scenario, server)
    if scenario.tool == "ab":
        pki = env.pki[scenario.downstream_tls or "ecdsa"]
        load = run_ab(url, duration, scenario.connections, pki.client_combined if scenario.verify_client else None)
    else:
        load = run_wrk(url, duration, scenario.connections, scenario.headers)
    after = server.stats()
    if load.errors:
        raise RuntimeError(f"{scenario.key}: {server.name} answered {load.errors} errors under load:\n{load.raw}")
    return Measurement(load, after.cpu_seconds - before.cpu_seconds, after.peak_rss_kib)


def run_scenario(
    scenario: Scenario,
    env: Environment,
    rounds: int,
    duration: float,
    warmup: float,
    log: Callable[[str], None] = print,
) -> ScenarioResult:
    """Both proxies up (and the floor, for ``FLOOR_SCENARIOS``), a warm-up run each, then ``rounds`` rounds with the
    order rotated from round to round, so that no side always gets the warmer machine; all stopped at the end
    whatever happens."""
    result = ScenarioResult(scenario)
    with Processes() as procs:
        servers = {"gateway": start_gateway(procs, scenario, env), "nginx": start_nginx_proxy(procs, scenario, env)}
        if scenario.key in FLOOR_SCENARIOS:
            servers["floor"] = start_floor(procs, scenario, env)
            result.floor = SideResult()
        client = None
        if scenario.verify_client:
            pki = env.pki[scenario.downstream_tls or "ecdsa"]
            client = (pki.client_chain, pki.client_key)
        for server in servers.values():
            probe(url_of(scenario, server), client)
            if warmup > 0:
                drive(scenario, env, server, warmup)
        sides = {"gateway": result.gateway, "nginx": result.nginx, "floor": result.floor}
        for index, name, measurement in rotated_rounds(scenario, env, servers, rounds, duration):
            side = sides[name]
            assert side is not None
            side.runs.append(measurement)
            value = measurement.load.mb_per_s if scenario.metric == "MB/s" else measurement.load.rps
            log(
                f"  {scenario.key} round {index + 1} {name:7s} {value:>10,.1f} {scenario.metric}"
                f"  p99 {measurement.load.p99_ms:.2f} ms  cpu {measurement.cpu_us_per_request:.1f} us/req"
            )
    return result


def rotated_rounds(
    scenario: Scenario, env: Environment, servers: Mapping[str, Server], rounds: int, duration: float
) -> Iterator[tuple[int, str, Measurement]]:
    """``rounds`` load runs of ``duration`` against each server, the order rotated from round to round so that no
    server always gets the warmer machine: ``(round index, server name, measurement)`` as each run ends."""
    names = list(servers)
    for index in range(rounds):
        shift = index % len(names)
        for name in names[shift:] + names[:shift]:
            time.sleep(0.5)  # let the previous run's sockets settle
            yield index, name, drive(scenario, env, servers[name], duration)
