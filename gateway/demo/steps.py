"""The demo's steps, as data: what each one teaches, the Admin API calls it makes, what it asks, what it expects.

Each step returns an ``Outcome`` (expected, got): the runner prints ``step N: ok (expected X, got Y)`` or
``step N: FAILED (...)``, which the test suite reads. Steps build on each other (the CA of step 2 is the one steps
10 and 11 trust), so ``--step N`` replays the earlier ones without their commentary.

==== ===== =========================================================================================================
step layer what happens
==== ===== =========================================================================================================
1    1     a certificate with ``snis`` [demo.test, \\*.demo.test]: www.demo.test gets it, another name the default
2    2     mtls-auth on a route: no client certificate -> 401
3    2     the learner's leaf alone (its intermediate missing) -> 401
4    2     leaf + intermediate -> 200
5    3     an upstream that requires a client certificate, none configured -> its 400
6    3     the certificate on the service -> 200, the upstream saw service-level
7    3     the certificate on the Upstream entity -> 200, the upstream saw upstream-level
8    3     the global client_ssl_cert -> needs a restart; then 200, the upstream saw global-level
9    4     tls_verify = true -> 502 with 20: no trusted root (Kong's default store is empty)
10   4     the root as the service's ca_certificates -> 200
11   4     an upstream sending two intermediates: 502 with 22 at the default depth 1; tls_verify_depth = 2 -> 200
==== ===== =========================================================================================================
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gateway.demo.client import Admin, ProxyAnswer, Say, request
from gateway.demo.gatewayproc import DemoGateway
from gateway.demo.pki import DemoPki, Identity
from gateway.demo.upstreams import DemoUpstreams

__all__ = ["STEPS", "Demo", "Outcome", "Step"]


@dataclass
class Demo:
    """Everything a step works with; ``ids`` keeps the entities earlier steps created."""

    pki: DemoPki
    gateway: DemoGateway
    upstreams: DemoUpstreams
    admin: Admin
    say: Say
    ids: dict[str, str] = field(default_factory=dict)
    log_offset: int = 0

    def get(self, host: str, *, tls: bool = False, cert: Identity | None = None, chain: bool = True) -> ProxyAnswer:
        pair = None
        if cert is not None:
            pair = (cert.files["chain.crt" if chain else "crt"], cert.files["key"])
        ca = self.pki.root.files["crt"] if tls and host.endswith("demo.test") else None
        answer = request(self.gateway, host, self.say, tls=tls, cert=pair, ca=ca)
        self.show(answer)
        return answer

    def show(self, answer: ProxyAnswer) -> None:
        if answer.served is not None:
            self.say(f"    served certificate: {answer.served_words}")
        body = " ".join(answer.body.split())
        self.say(f"    -> {answer.status} {body[:160]}")
        for line in answer.debug:
            self.say(f"    {line}")

    def mark_log(self) -> None:
        """Later ``new_error_lines`` calls show only what is written from now on."""
        _, self.log_offset = self.gateway.error_lines_since(self.log_offset)

    def new_error_lines(self, needle: str) -> list[str]:
        lines, self.log_offset = self.gateway.error_lines_since(self.log_offset)
        found = [line for line in lines if needle in line]
        for line in found:
            self.say(f"    error.log: {line}")
        return found

    def service(self, name: str, url: str, host: str, **fields: Any) -> None:
        service = self.admin.post("/services", {"name": name, "url": url, **fields})
        self.admin.post("/routes", {"name": name, "hosts": [host], "service": {"id": service["id"]}})
        self.ids[name] = str(service["id"])

    def certificate(self, identity: Identity, **fields: Any) -> str:
        body = {"cert": identity.chain_pem, "key": identity.key_pem, **fields}
        return str(self.admin.post("/certificates", body)["id"])


@dataclass(frozen=True, slots=True)
class Outcome:
    expected: str
    got: str

    @property
    def ok(self) -> bool:
        return self.expected == self.got


@dataclass(frozen=True, slots=True)
class Step:
    number: int
    layer: int
    title: str
    teaches: str
    run: Callable[[Demo], Outcome]


def _status(answer: ProxyAnswer) -> str:
    return str(answer.status)


def _client_seen(answer: ProxyAnswer) -> str:
    return f"{answer.status} {answer.headers.get('x-demo-client-cert', 'no client certificate')}"


def _tls_error(demo: Demo, answer: ProxyAnswer) -> str:
    demo.new_error_lines("while SSL handshaking to upstream")
    reason = answer.headers.get("x-gateway-tls-error", "")
    code = reason[reason.find("(") :] if "(" in reason else reason
    return f"{answer.status} {code}".strip()


# ---------------------------------------------------------------------------------------------- layer 1


def _serve_by_sni(demo: Demo) -> Outcome:
    demo.service("hello", f"https://127.0.0.1:{demo.upstreams.ports['verify']}/", "demo.test")
    demo.certificate(demo.pki.served, snis=["demo.test", "*.demo.test"])
    matched = demo.get("www.demo.test", tls=True)
    other = demo.get("other.example", tls=True)
    got = f"www.demo.test={matched.served_words.split(',')[0]}; other.example={other.served_words.split(',')[0]}"
    return Outcome("www.demo.test=CN=demo.test; other.example=CN=localhost", got)


# ---------------------------------------------------------------------------------------------- layer 2


def _mtls_no_cert(demo: Demo) -> Outcome:
    demo.ids["root"] = str(demo.admin.post("/ca_certificates", {"cert": demo.pki.root.cert_pem})["id"])
    route = {
        "name": "mtls",
        "protocols": ["https"],
        "hosts": ["mtls.demo.test"],
        "snis": ["mtls.demo.test"],
        "service": {"id": demo.ids["hello"]},
    }
    demo.admin.post("/routes", route)
    config = {"ca_certificates": [demo.ids["root"]], "skip_consumer_lookup": True, "revocation_check_mode": "SKIP"}
    demo.admin.post("/routes/mtls/plugins", {"name": "mtls-auth", "config": config})
    return Outcome("401", _status(demo.get("mtls.demo.test", tls=True)))


def _mtls_leaf_only(demo: Demo) -> Outcome:
    answer = demo.get("mtls.demo.test", tls=True, cert=demo.pki.learner, chain=False)
    demo.new_error_lines("[mtls-auth]")
    return Outcome("401", _status(answer))


def _mtls_full_chain(demo: Demo) -> Outcome:
    return Outcome("200", _status(demo.get("mtls.demo.test", tls=True, cert=demo.pki.learner)))


# ---------------------------------------------------------------------------------------------- layer 3


def _upstream_no_cert(demo: Demo) -> Outcome:
    demo.service("by-service", f"https://127.0.0.1:{demo.upstreams.ports['mtls']}/", "service.demo.test")
    return Outcome("400 no client certificate", _client_seen(demo.get("service.demo.test")))


def _cert_on_service(demo: Demo) -> Outcome:
    cert_id = demo.certificate(demo.pki.levels["service"])
    demo.admin.patch("/services/by-service", {"client_certificate": {"id": cert_id}})
    return Outcome("200 CN=service-level", _client_seen(demo.get("service.demo.test")))


def _cert_on_upstream(demo: Demo) -> Outcome:
    cert_id = demo.certificate(demo.pki.levels["upstream"])
    demo.admin.post("/upstreams", {"name": "mtls.demo.internal", "client_certificate": {"id": cert_id}})
    target = f"127.0.0.1:{demo.upstreams.ports['mtls']}"
    demo.admin.post("/upstreams/mtls.demo.internal/targets", {"target": target})
    demo.service("by-upstream", "https://mtls.demo.internal/", "upstream.demo.test")
    return Outcome("200 CN=upstream-level", _client_seen(demo.get("upstream.demo.test")))


def _cert_global(demo: Demo) -> Outcome:
    demo.service("by-global", f"https://127.0.0.1:{demo.upstreams.ports['mtls']}/", "global.demo.test")
    before = _client_seen(demo.get("global.demo.test"))
    identity = demo.pki.levels["global"]
    settings = {
        "client_ssl": "on",
        "client_ssl_cert": str(identity.files["chain.crt"]),
        "client_ssl_cert_key": str(identity.files["key"]),
    }
    demo.say("  client_ssl_cert is read when the gateway starts (an nginx directive in Kong): restarting with")
    for key, value in settings.items():
        demo.say(f"    {key} = {value}")
    demo.say(
        f"  $ gateway stop -p {demo.gateway.prefix} && gateway start -p {demo.gateway.prefix} -c {demo.gateway.conf}"
    )
    demo.gateway.restart(**settings)
    after = _client_seen(demo.get("global.demo.test"))
    return Outcome("400 no client certificate, then 200 CN=global-level", f"{before}, then {after}")


# ---------------------------------------------------------------------------------------------- layer 4


def _verified_service(demo: Demo, name: str, **fields: Any) -> None:
    """An Upstream entity ``NAME.demo.internal`` (its host_header is the SNI and the name checked) and its service."""
    host = f"{name}.demo.internal"
    demo.admin.post("/upstreams", {"name": host, "host_header": host})
    demo.admin.post(f"/upstreams/{host}/targets", {"target": f"127.0.0.1:{demo.upstreams.ports[name]}"})
    demo.service(name, f"https://{host}/", f"{name}.demo.test", retries=0, **fields)


def _verify_on(demo: Demo) -> Outcome:
    _verified_service(demo, "verify")
    off = _status(demo.get("verify.demo.test"))
    demo.admin.patch("/services/verify", {"tls_verify": True})
    on = _tls_error(demo, demo.get("verify.demo.test"))
    return Outcome("200, then 502 (20:unable to get local issuer certificate)", f"{off}, then {on}")


def _verify_with_ca(demo: Demo) -> Outcome:
    demo.admin.patch("/services/verify", {"ca_certificates": [demo.ids["root"]]})
    return Outcome("200", _status(demo.get("verify.demo.test")))


def _verify_depth(demo: Demo) -> Outcome:
    _verified_service(demo, "deep", tls_verify=True, ca_certificates=[demo.ids["root"]])
    short = _tls_error(demo, demo.get("deep.demo.test"))
    demo.admin.patch("/services/deep", {"tls_verify_depth": 2})
    deep = _status(demo.get("deep.demo.test"))
    return Outcome("502 (22:certificate chain too long), then 200", f"{short}, then {deep}")


STEPS: tuple[Step, ...] = (
    Step(
        1,
        1,
        "the certificate the gateway serves is chosen by SNI",
        "A certificate entity with snis [demo.test, *.demo.test]: a handshake for www.demo.test gets it (the wildcard "
        "rule); a name no entity claims gets the default certificate (ssl_cert, or the one the gateway generated).",
        _serve_by_sni,
    ),
    Step(
        2,
        2,
        "mtls-auth asks for a client certificate: none sent",
        "mtls-auth on the route of mtls.demo.test, trusting the demo root (a CA certificate entity). The handshake "
        "for that SNI asks for a client certificate; a request without one gets 401.",
        _mtls_no_cert,
    ),
    Step(
        3,
        2,
        "mtls-auth: the leaf alone fails",
        "The learner's certificate was issued by the intermediate, and only the root is trusted: sent alone, the "
        "chain cannot be built (OpenSSL 20/21), so 401.",
        _mtls_leaf_only,
    ),
    Step(
        4,
        2,
        "mtls-auth: leaf + intermediate passes",
        "The same certificate with its intermediate after it (what a client should send): the chain reaches the "
        "trusted root, 200.",
        _mtls_full_chain,
    ),
    Step(
        5,
        3,
        "an upstream that requires a client certificate, none configured",
        "mtls.demo.internal answers 400 'No required SSL certificate was sent' (as nginx with ssl_verify_client on) "
        "when the gateway presents nothing.",
        _upstream_no_cert,
    ),
    Step(
        6,
        3,
        "the client certificate on the service",
        "service.client_certificate: the first of the three levels (service, Upstream entity, global setting).",
        _cert_on_service,
    ),
    Step(
        7,
        3,
        "the client certificate on the Upstream entity",
        "A service whose host is an Upstream entity with a client_certificate, and none of its own: the Upstream's.",
        _cert_on_upstream,
    ),
    Step(
        8,
        3,
        "the global client_ssl_cert",
        "A service with no certificate and no Upstream entity falls back to client_ssl = on + client_ssl_cert, a "
        "kong.conf setting: it takes a restart, not an Admin API call.",
        _cert_global,
    ),
    Step(
        9,
        4,
        "tls_verify = true: the upstream's certificate is checked",
        "By default (proxy_ssl_verify = off) the gateway does not check the upstream. With service.tls_verify = "
        "true it does, against Kong's default trust store: empty. The upstream is an Upstream entity whose "
        "host_header (verify.demo.internal) is the SNI sent and the name checked. 502, and the code in the error log.",
        _verify_on,
    ),
    Step(
        10,
        4,
        "the root as the service's ca_certificates",
        "service.ca_certificates = [the demo root, the CA certificate entity of step 2]: it replaces the global "
        "store (proxy_ssl_trusted_certificate) for this service; the chain verifies, 200.",
        _verify_with_ca,
    ),
    Step(
        11,
        4,
        "the verify depth",
        "deep.demo.internal sends two intermediates. OpenSSL's depth counts the intermediates between the leaf and "
        "the root (neither counted): this chain needs 2, the default (proxy_ssl_verify_depth) is 1, so 22; with "
        "service.tls_verify_depth = 2, 200. (gateway doctor upstream HOST:PORT says the depth any upstream needs.)",
        _verify_depth,
    ),
)
