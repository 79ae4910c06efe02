"""Reference section 8.B, cases 20-41 (Kong's ``spec/02-integration/05-proxy/06-ssl_spec.lua``), end to end.

The real ``gateway`` process is configured through its Admin API exactly as Kong's spec configures Kong, and is
driven by ``openssl s_client -servername ... -showcerts``, curl (``--resolve``, ``--cacert``) and Python's ``ssl``.
Beyond Kong's own assertions (the served subject), every handshake check also looks at the chain that was sent
(leaf + its intermediate, never the root) and, where a certificate has an RSA and an ECDSA pair, at which one an
RSA-only client and an ECDSA-capable client get.

Not covered here: 35-37 (upstream SNI) belong to the upstream TLS tests; 38 is a stream (``tls``) listener, which
the gateway does not have - what applies of it (an SNI-selected certificate and an SNI-matched route on the HTTPS
listener) is checked below.
"""

from __future__ import annotations

import json

import pytest

from tests.integration.tls.served.clients import (
    cn,
    curl,
    key_type,
    python_handshake,
    s_client,
    wait_until,
)
from tests.integration.tls.served.conftest import Pki, ReferenceGateway, start_ssl_gateway

RSA_ONLY = ("-sigalgs", "RSA-PSS+SHA256:RSA+SHA256:RSA-PSS+SHA384:RSA+SHA384")
ECDSA_FIRST = ("-sigalgs", "ECDSA+SHA256:RSA-PSS+SHA256:RSA+SHA256")


def _chain_ok(handshake_subjects: list[str], leaf: str, intermediate: str) -> None:
    assert handshake_subjects == [leaf, intermediate], handshake_subjects
    assert "Kong Testing Root CA" not in handshake_subjects


def _log_tail(ref: ReferenceGateway, start: int) -> str:
    return ref.gw.error_log.read_bytes()[start:].decode("utf-8", "replace")


# ---------------------------------------------------------------------------------------------------- 20, 21
def test_20_no_sni_gets_default_certificate_and_routes_by_host(reference: ReferenceGateway) -> None:
    # curl sends no SNI to an IP literal, as Kong's spec client does
    res = curl("-k", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Host: global.com", reference.gw.proxy_ssl_url)
    assert res.stdout == "200", res.stderr
    served = s_client(reference.ssl_port, None)
    assert served.subjects == ["localhost"]  # the generated default pair, self-signed: no chain above it


def test_21_unknown_sni_gets_generated_default_rsa_or_ecdsa(reference: ReferenceGateway) -> None:
    rsa = s_client(reference.ssl_port, "test.com", *RSA_ONLY)
    ecdsa = s_client(reference.ssl_port, "test.com", *ECDSA_FIRST)
    assert cn(rsa.leaf) == cn(ecdsa.leaf) == "localhost"
    assert (key_type(rsa.leaf), key_type(ecdsa.leaf)) == ("rsa", "ec")
    # Kong's default pair: self-signed, Kong's subject
    assert rsa.leaf.issuer == rsa.leaf.subject
    assert (
        rsa.leaf.subject.rfc4514_string() == "CN=localhost,OU=IT Department,O=Kong,L=San Francisco,ST=California,C=US"
    )


# ---------------------------------------------------------------------------------------------------- 22
@pytest.mark.parametrize("sni", ["ssl1.com", "example.com"])
def test_22_exact_sni_serves_its_certificate_with_chain_and_key_type(
    reference: ReferenceGateway, pki: Pki, sni: str
) -> None:
    rsa = s_client(reference.ssl_port, sni, *RSA_ONLY)
    _chain_ok(rsa.subjects, "ssl-example.com", "Kong Testing RSA Intermediate")
    assert key_type(rsa.leaf) == "rsa"
    ecdsa = s_client(reference.ssl_port, sni, *ECDSA_FIRST)
    _chain_ok(ecdsa.subjects, "ssl-example.com", "Kong Testing ECDSA Intermediate")
    assert key_type(ecdsa.leaf) == "ec"
    # TLS 1.2 with an RSA-only cipher suite picks the RSA pair too
    tls12 = s_client(reference.ssl_port, sni, "-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256")
    assert (tls12.protocol, key_type(tls12.leaf)) == ("TLSv1.2", "rsa")
    # a verifying client that trusts only the root accepts the chain (so the intermediate was sent)
    res = curl(
        "--resolve",
        f"{sni}:{reference.ssl_port}:127.0.0.1",
        "--cacert",
        pki.root_file,
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        f"https://{sni}:{reference.ssl_port}/",
    )
    assert res.returncode == 0 and res.stdout == "200", res.stderr
    leaf, version, _ = python_handshake(reference.ssl_port, sni, pki.root_file)
    assert cn(leaf) == "ssl-example.com" and version in ("TLSv1.2", "TLSv1.3")


# ---------------------------------------------------------------------------------------------------- 23-27
@pytest.mark.parametrize(
    ("case", "sni", "expected", "intermediate"),
    [
        ("23 prefix wildcard beats suffix", "test.wildcard.com", "ssl-alt.com", "Kong Testing RSA Intermediate"),
        ("24 suffix wildcard", "wildcard.eu", "ssl-alt.com", "Kong Testing RSA Intermediate"),
        ("25 exact beats wildcard.*", "wildcard.org", "ssl-alt-alt.com", "Kong Testing RSA Intermediate"),
        ("26 suffix test.wildcard.*", "test.wildcard.org", "ssl-alt-alt.com", "Kong Testing RSA Intermediate"),
        ("27 one label per wildcard", "test.www.wildcard.com", "ssl-alt-alt.com", "Kong Testing RSA Intermediate"),
    ],
)
def test_23_to_27_wildcard_sni_priorities(
    reference: ReferenceGateway, case: str, sni: str, expected: str, intermediate: str
) -> None:
    served = s_client(reference.ssl_port, sni, *RSA_ONLY)
    _chain_ok(served.subjects, expected, intermediate)
    leaf, _, _ = python_handshake(reference.ssl_port, sni)
    assert cn(leaf) == expected, case


def test_27_ecdsa_pair_of_a_wildcard_match(reference: ReferenceGateway) -> None:
    served = s_client(reference.ssl_port, "test.www.wildcard.com", *ECDSA_FIRST)
    _chain_ok(served.subjects, "ssl-alt-alt.com", "Kong Testing ECDSA Intermediate")
    assert key_type(served.leaf) == "ec"


# ---------------------------------------------------------------------------------------------------- 28-31
def test_28_29_https_only_route_over_http_gets_426(reference: ReferenceGateway) -> None:
    for host in ("example.com", "sni.example.com"):  # 29: the route's snis are ignored over plain HTTP
        res = curl("-i", "-H", f"Host: {host}", reference.gw.proxy_url + "/")
        head, _, body = res.stdout.partition("\n\n")  # text mode turned CRLF into LF
        assert head.startswith("HTTP/1.1 426"), res.stdout
        assert json.loads(body)["message"] == "Please use HTTPS protocol"
        headers = {k.lower(): v for k, _, v in (line.partition(": ") for line in head.split("\n")[1:])}
        assert "Upgrade" in headers["connection"]
        assert headers["upgrade"] == "TLS/1.2, HTTP/1.1"
        # the same request over TLS is proxied
        over_tls = curl(
            "-k",
            "--resolve",
            f"{host}:{reference.ssl_port}:127.0.0.1",
            f"https://{host}:{reference.ssl_port}/",
        )
        assert over_tls.stdout.startswith("ok uri=/ "), over_tls.stdout + over_tls.stderr
        assert "xfp=https" in over_tls.stdout


def test_30_31_https_redirect_status_codes(reference: ReferenceGateway) -> None:
    res = curl(
        "-o",
        "/dev/null",
        "-w",
        "%{http_code} %{redirect_url}",
        "-H",
        "Host: example.com",
        reference.gw.proxy_url + "/redirect-301",
    )
    assert res.stdout == "301 https://example.com/redirect-301"
    res = curl(
        "-o",
        "/dev/null",
        "-w",
        "%{http_code} %{redirect_url}",
        "-H",
        "Host: example.com",
        reference.gw.proxy_url + "/redirect-302?foo=bar",
    )
    assert res.stdout == "302 https://example.com/redirect-302?foo=bar"
    # following the redirect over real TLS reaches the route
    followed = curl(
        "-k",
        "--resolve",
        f"example.com:{reference.ssl_port}:127.0.0.1",
        f"https://example.com:{reference.ssl_port}/redirect-302?foo=bar",
    )
    assert followed.stdout.startswith("ok uri=/redirect-302?foo=bar"), followed.stdout


# ---------------------------------------------------------------------------------------------------- 32-34
def test_33_x_forwarded_proto_from_trusted_ip(reference: ReferenceGateway) -> None:
    ok = curl(
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-H",
        "Host: example.com",
        "-H",
        "X-Forwarded-Proto: https",
        reference.gw.proxy_url + "/status/200",
    )
    assert ok.stdout == "200"
    bad = curl(
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-H",
        "Host: example.com",
        "-H",
        "X-Forwarded-Proto: httpsa",
        reference.gw.proxy_url + "/status/200",
    )
    assert bad.stdout == "426"


@pytest.mark.parametrize(("case", "trusted_ips"), [("32 no trusted_ips", None), ("34 other ip", "1.2.3.4")])
def test_32_34_x_forwarded_proto_from_untrusted_client(tmp_path, upstream, case: str, trusted_ips: str | None) -> None:
    env = {"KONG_TRUSTED_IPS": trusted_ips} if trusted_ips else {}
    gw = start_ssl_gateway(tmp_path, env)
    try:
        import httpx

        with httpx.Client(base_url=gw.admin_url, timeout=10) as admin:
            assert admin.post("/services", json={"name": "s", "url": f"http://127.0.0.1:{upstream.port}"}).is_success
            assert admin.post("/services/s/routes", json={"protocols": ["https"], "hosts": ["ssl1.com"]}).is_success

        def probe() -> str:
            return curl(
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "-H",
                "Host: ssl1.com",
                "-H",
                "X-Forwarded-Proto: https",
                gw.proxy_url + "/status/200",
            ).stdout

        assert wait_until(probe, lambda code: code != "404") == "426", case
        # the real thing, over TLS, is proxied
        over_tls = curl("-k", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Host: ssl1.com", gw.proxy_ssl_url)
        assert over_tls.stdout == "200"
    finally:
        assert gw.stop() == 0


# ---------------------------------------------------------------------------------------------------- 38, 39
def test_38_sni_selected_certificate_and_sni_routed_request(reference: ReferenceGateway) -> None:
    """The HTTPS half of case 38: SNI ``example.com`` serves ``ssl-example.com`` and routes by ``snis``."""
    served = s_client(reference.ssl_port, "example.com")
    assert cn(served.leaf) == "ssl-example.com"
    res = curl(
        "-k",
        "--resolve",
        f"example.com:{reference.ssl_port}:127.0.0.1",
        f"https://example.com:{reference.ssl_port}/sni",
    )
    assert res.stdout.startswith("ok uri=/sni-routed "), res.stdout
    # same Host and path under another SNI: the snis route does not match, the hosts route does
    res = curl(
        "-k",
        "--resolve",
        f"ssl1.com:{reference.ssl_port}:127.0.0.1",
        "-H",
        "Host: example.com",
        f"https://ssl1.com:{reference.ssl_port}/sni",
    )
    assert res.stdout.startswith("ok uri=/sni "), res.stdout


def test_39_route_sni_with_trailing_dot_matches(reference: ReferenceGateway) -> None:
    port = reference.ssl_port
    res = curl("-k", "--resolve", f"foobar.example.com:{port}:127.0.0.1", f"https://foobar.example.com:{port}/fqdn")
    assert res.stdout.startswith("ok uri=/sni-routed "), res.stdout
    miss = curl(
        "-k",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--resolve",
        f"other.example.com:{port}:127.0.0.1",
        f"https://other.example.com:{port}/fqdn",
    )
    assert miss.stdout == "404"


@pytest.mark.parametrize(
    ("sni", "matches"),
    [("a.foo.test", True), ("a.b.foo.test", True), ("foo.test", False), ("bar.x", True), ("bar.y.z", True)],
)
def test_route_snis_wildcards_are_suffix_and_prefix_matches(
    reference: ReferenceGateway, sni: str, matches: bool
) -> None:
    """Reference 1.5 / case 92: route ``*.foo.test`` spans labels, ``bar.*`` too (unlike certificate SNIs)."""
    port = reference.ssl_port
    res = curl(
        "-k",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--resolve",
        f"{sni}:{port}:127.0.0.1",
        f"https://{sni}:{port}/wild",
    )
    assert res.stdout == ("200" if matches else "404")


# ---------------------------------------------------------------------------------------------------- 40
def test_40_catch_all_sni_entity(reference: ReferenceGateway) -> None:
    port = reference.ssl_port
    cert_id = reference.certificates["ssl-example.com"]
    sni = reference.admin.post("/snis", {"name": "*", "certificate": {"id": cert_id}})
    try:
        served = wait_until(lambda: s_client(port, "nothing-else.test"), lambda h: h.subjects[:1] != ["localhost"])
        assert served.subjects[0] == "ssl-example.com"
        # no SNI never consults "*"
        assert s_client(port, None).subjects == ["localhost"]
    finally:
        reference.admin.delete(f"/snis/{sni['id']}")
    back = wait_until(lambda: s_client(port, "nothing-else.test"), lambda h: h.subjects[:1] == ["localhost"])
    assert back.subjects == ["localhost"]


# ---------------------------------------------------------------------------------------------------- 41
@pytest.mark.parametrize(
    ("sni", "reason"),
    [
        ("a.example.com:600", "must not have a port"),
        ("a.example.com:88888", "must not have a port"),
        ("127.0.0.1", "must not be an IP"),
        ("127.0.0.1:443", "must not be an IP"),
        ("256.256.256.256", "invalid value: "),
        ("*.exam*le.com", "only one wildcard must be specified"),
        ("a.exam*le.com", "wildcard must be leftmost or rightmost character"),
        ("a.example.com", None),
    ],
)
def test_41_invalid_client_sni_gets_default_with_a_debug_line(
    reference: ReferenceGateway, sni: str, reason: str | None
) -> None:
    start = reference.gw.error_log.stat().st_size
    served = s_client(reference.ssl_port, sni)
    assert served.subjects == ["localhost"], served.output
    # the s_client exit closes the connection; the debug line was written during the handshake
    log = _log_tail(reference, start)
    assert "[error]" not in log
    if reason is None:
        assert "invalid SNI" not in log
    else:
        assert f"invalid SNI '{sni}', {reason}" in log, log
