"""``gateway.doctor.conf.check_files``: the values kong.conf accepts besides paths, and settings start does not read."""

from __future__ import annotations

import base64
import pathlib

from gateway.doctor.conf import check_files
from gateway.doctor.findings import Kind, Severity
from gateway.settings import load_settings
from tests.fixtures.certs import make_ca, make_cert

ROOT = make_ca("Conf Root")
CLIENT = make_cert("client.test", issuer=ROOT)


def test_inline_and_base64_pem_are_read_like_start_reads_them() -> None:
    encoded = base64.b64encode(CLIENT.cert_pem.encode()).decode()
    settings = load_settings(
        env={},
        overrides={"client_ssl": "on", "client_ssl_cert": encoded, "client_ssl_cert_key": CLIENT.key_pem},
    )
    findings = check_files(settings)
    # a lone leaf issued by a root we cannot know about: a warning for check (start accepts it), nothing refused
    assert [(f.kind, f.severity, f.subject) for f in findings] == [
        (Kind.LEAF_ONLY, Severity.WARNING, "client_ssl_cert (base64 PEM)")
    ]


def test_an_inline_key_that_does_not_match_is_refused_and_labelled_inline() -> None:
    other = make_cert("other.test", issuer=ROOT)
    settings = load_settings(
        env={}, overrides={"client_ssl": "on", "client_ssl_cert": CLIENT.cert_pem, "client_ssl_cert_key": other.key_pem}
    )
    findings = check_files(settings)
    assert [(f.kind, f.subject) for f in findings if f.severity is Severity.PROBLEM] == [
        (Kind.KEY_MISMATCH, "client_ssl_cert_key (inline PEM)"),
        (Kind.START_REFUSES, None),
    ]
    assert findings[-1].message == (
        "gateway start refuses the upstream TLS settings: client_ssl_cert_key does not match client_ssl_cert"
    )


def test_a_client_certificate_without_client_ssl_is_not_read(tmp_path: pathlib.Path) -> None:
    settings = load_settings(env={}, overrides={"client_ssl_cert": str(tmp_path / "absent.pem")})
    [finding] = check_files(settings)
    assert finding.kind is Kind.NOT_USED and finding.severity is Severity.WARNING


def test_the_default_configuration_names_no_file() -> None:
    assert check_files(load_settings(env={})) == []
