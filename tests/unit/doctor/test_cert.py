"""``gateway.doctor.cert.examine``: the structure of a bundle and the words, without a process.

The console-script tests (tests/integration/test_cli_doctor.py) cover the acceptance list; these cover the rest of
the findings: extra, duplicate and out-of-order certificates, issuers that are not CAs, intermediates borrowed from the
CA file, the verification codes, the dates, and the host check's IP rule.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Sequence

from gateway.doctor.cert import examine, examine_trust
from gateway.doctor.findings import Finding, Kind, Severity, exit_status, render_json, render_text
from gateway.tls.engine.x509 import TrustStore, verify_chain
from tests.fixtures.certs import days, make_ca, make_cert

ROOT = make_ca("Unit Root")
INTER = make_ca("Unit Intermediate", issuer=ROOT)
INTER2 = make_ca("Unit Intermediate 2", issuer=INTER)
LEAF = make_cert("unit.test", issuer=INTER)
DEEP = make_cert("deep.unit.test", issuer=INTER2)


def by_kind(findings: Sequence[Finding], kind: Kind) -> list[Finding]:
    return [f for f in findings if f.kind is kind]


def problems(findings: Sequence[Finding]) -> set[Kind]:
    return {f.kind for f in findings if f.severity is Severity.PROBLEM}


def warnings(findings: Sequence[Finding]) -> set[Kind]:
    return {f.kind for f in findings if f.severity is Severity.WARNING}


def test_a_stray_certificate_and_a_copy_are_warnings() -> None:
    stray = make_cert("stray.test", issuer=ROOT)
    findings = examine([LEAF.cert, INTER.cert, stray.cert, INTER.cert])
    assert problems(findings) == set()
    assert warnings(findings) == {Kind.EXTRA_CERTIFICATE, Kind.DUPLICATE}
    [extra] = by_kind(findings, Kind.EXTRA_CERTIFICATE)
    assert extra.message.startswith("certificate 3 (CN=stray.test) is a certificate that issued none of the leaf's")
    [copy] = by_kind(findings, Kind.DUPLICATE)
    assert copy.message == "certificate 4 is a copy of certificate 2."
    assert exit_status(findings) == 0


def test_intermediates_out_of_issuer_order_are_a_warning() -> None:
    findings = examine([DEEP.cert, INTER.cert, INTER2.cert])
    [order] = by_kind(findings, Kind.OUT_OF_ORDER)
    assert order.severity is Severity.WARNING
    assert order.fix == (
        "list each certificate right after the one it issued: CN=deep.unit.test, then CN=Unit Intermediate 2, "
        "then CN=Unit Intermediate."
    )
    assert not by_kind(findings, Kind.EXTRA_CERTIFICATE)


def test_an_issuer_that_is_not_a_ca_is_what_openssl_rejects_with_79() -> None:
    not_ca = make_cert("Not A CA", issuer=ROOT)
    below = make_cert("below.test", issuer=not_ca)
    findings = examine([below.cert, not_ca.cert], cas=[ROOT.cert])
    [flag] = by_kind(findings, Kind.ISSUER_NOT_CA)
    assert "certificate 2 (CN=Not A CA) issued certificate 1 (CN=below.test) but is not a CA (CA:FALSE)" in flag.message
    [failed] = by_kind(findings, Kind.VERIFY_FAILED)
    assert flag.facts["code"] == 79
    assert failed.facts == {"code": 79, "depth": 1}


def test_a_lone_leaf_verifying_only_through_the_ca_files_intermediate_is_still_leaf_only() -> None:
    findings = examine([LEAF.cert], cas=[INTER.cert, ROOT.cert], ca_label="cas.pem")
    assert by_kind(findings, Kind.VERIFIED)
    [leaf_only] = by_kind(findings, Kind.LEAF_ONLY)
    assert leaf_only.message == (
        "leaf only: the chain verifies only because cas.pem holds CN=Unit Intermediate; clients that have only the "
        "root fail with 21 unable to verify the first certificate."
    )
    assert leaf_only.fix == "append CN=Unit Intermediate to the bundle, after the certificate it issued."


def test_a_lone_leaf_issued_by_the_root_itself_is_fine_once_the_root_is_known() -> None:
    direct = make_cert("direct.test", issuer=ROOT)
    assert Kind.LEAF_ONLY in problems(examine([direct.cert]))  # without --ca the issuer could be an intermediate
    findings = examine([direct.cert], cas=[ROOT.cert])
    assert problems(findings) == set()
    [depth] = by_kind(findings, Kind.DEPTH_NEEDED)
    assert depth.facts == {"depth": 0}


def test_an_incomplete_chain_names_the_borrowed_intermediate() -> None:
    findings = examine([DEEP.cert, INTER2.cert], cas=[INTER.cert, ROOT.cert])
    [missing] = by_kind(findings, Kind.INTERMEDIATE_MISSING)
    assert "holds CN=Unit Intermediate; clients that have only the root fail with 20 unable to get local issuer" in (
        missing.message
    )
    [depth] = by_kind(findings, Kind.DEPTH_NEEDED)
    assert depth.facts == {"depth": 2}


def test_verification_failures_carry_openssls_code_and_a_fix() -> None:
    other_root = make_ca("Other Root")
    wrong = examine([LEAF.cert, INTER.cert], cas=[other_root.cert], ca_label="other.pem")
    [failed] = by_kind(wrong, Kind.VERIFY_FAILED)
    assert failed.facts == {"code": 20, "depth": 1}
    assert "OpenSSL says 20:unable to get local issuer certificate, at depth 1" in failed.message
    assert failed.fix is not None and "nothing in the bundle or other.pem issued CN=Unit Intermediate" in failed.fix

    no_root = examine([LEAF.cert], cas=[INTER.cert], ca_label="inter.pem")
    [failed] = by_kind(no_root, Kind.VERIFY_FAILED)
    assert failed.facts["code"] == 2
    assert failed.fix is not None and "add the root to inter.pem" in failed.fix


def test_the_verdict_is_the_engines() -> None:
    for chain, depth in (([LEAF.cert, INTER.cert], 1), ([DEEP.cert, INTER2.cert, INTER.cert], 2)):
        [needed] = by_kind(examine(chain, cas=[ROOT.cert]), Kind.DEPTH_NEEDED)
        assert needed.facts["depth"] == depth
        store = TrustStore([ROOT.cert])
        assert verify_chain(chain, store, depth).ok
        assert verify_chain(chain, store, depth - 1).code == 22


def test_dates_not_yet_valid_expiring_and_expired() -> None:
    future = make_cert("future.test", issuer=INTER, not_before=days(3), not_after=days(300))
    soon = make_cert("soon.test", issuer=INTER, not_after=days(10))
    [early] = by_kind(examine([future.cert, INTER.cert]), Kind.NOT_YET_VALID)
    assert early.severity is Severity.PROBLEM
    assert "Clients fail with 9 certificate is not yet valid." in early.message
    [expiring] = by_kind(examine([soon.cert, INTER.cert]), Kind.EXPIRING_SOON)
    assert expiring.severity is Severity.WARNING
    assert "in 9 days" in expiring.message
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=400)
    expired = by_kind(examine([LEAF.cert, INTER.cert], now=later), Kind.EXPIRED)
    assert [f.facts["index"] for f in expired] == [1, 2]
    assert expired[1].fix == "get the current one from the CA that issued it."


def test_a_self_signed_certificate_and_its_own_trust() -> None:
    self_signed = make_cert("self.test")
    [warning] = by_kind(examine([self_signed.cert]), Kind.SELF_SIGNED)
    assert "clients fail with 18 self-signed certificate unless they trust this very certificate" in warning.message
    trusted = examine([self_signed.cert], cas=[self_signed.cert])
    assert problems(trusted) == set() and not by_kind(trusted, Kind.SELF_SIGNED)
    assert by_kind(trusted, Kind.DEPTH_NEEDED)[0].facts == {"depth": 0}


def test_the_key_of_the_intermediate_is_a_mismatch_not_a_reversed_chain() -> None:
    findings = examine([LEAF.cert, INTER.cert], key=INTER.key)
    assert problems(findings) == {Kind.KEY_MISMATCH}
    [mismatch] = by_kind(findings, Kind.KEY_MISMATCH)
    assert "it belongs to certificate 2 (CN=Unit Intermediate), a CA certificate, not to the leaf" in mismatch.message


def test_an_ip_name_is_checked_as_nginx_checks_it() -> None:
    ip_only = make_cert("ip.test", issuer=INTER, sans=["127.0.0.1"])
    findings = examine([ip_only.cert, INTER.cert], name="127.0.0.1")
    assert by_kind(findings, Kind.CN_ONLY)
    [mismatch] = by_kind(findings, Kind.NAME_MISMATCH)
    assert "127.0.0.1 is one of its IP SANs, which browsers and curl accept, but nginx" in mismatch.message
    assert by_kind(examine([LEAF.cert, INTER.cert], name="UNIT.test"), Kind.NAME_MATCH)  # ASCII case folding


def test_a_trust_bundle_only_reports_dates() -> None:
    old_ca = make_ca("Old CA", not_before=days(-100), not_after=days(-1))
    findings = examine_trust([ROOT.cert, old_ca.cert])
    assert [(f.kind, f.facts["index"]) for f in findings] == [(Kind.EXPIRED, 2)]


def test_check_rates_what_start_accepts_as_a_warning() -> None:
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=400)
    findings = examine([INTER.cert, LEAF.cert], key=LEAF.key, now=later)
    rated = {f.kind: f.for_check().severity for f in findings if f.severity is not Severity.OK}
    assert rated == {Kind.LEAF_NOT_FIRST: Severity.PROBLEM, Kind.EXPIRED: Severity.WARNING}
    assert exit_status([f.for_check() for f in findings if f.kind is Kind.EXPIRED]) == 0


def test_text_and_json_say_the_same() -> None:
    findings = examine([INTER.cert, LEAF.cert], key=LEAF.key)
    lines = render_text(findings)
    assert lines[-1] == "summary: 1 problem, 0 warnings"
    assert [line.split()[0] for line in lines[:-1]] == [f.severity.value for f in findings]
    document = json.loads(render_json(findings, file="x.pem"))
    assert document["file"] == "x.pem" and document["exit"] == 1 and document["problems"] == 1
    assert [f["kind"] for f in document["findings"]] == [f.kind.value for f in findings]


def test_every_finding_kind_has_a_unique_name() -> None:
    assert len({k.value for k in Kind}) == len(Kind)
    assert all(isinstance(k.severity, Severity) for k in Kind)
