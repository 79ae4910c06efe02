"""``gateway doctor cert``, run as users run it: the real console script on real PEM files.

Each case of the acceptance list (a correct chain, a reversed chain, a lone leaf, a bundle with its root, an expired
leaf, a key mismatch, a name mismatch, a chain needing depth 2) is checked for its words and its exit status, and
the "depth needed" is cross-checked against ``openssl verify -verify_depth``.
"""

from __future__ import annotations

import json
import pathlib
import subprocess
from dataclasses import dataclass
from typing import Any

import pytest

from tests.fixtures.certs import Issued, days, make_ca, make_cert
from tests.fixtures.gateway_process import run_cli


@dataclass
class Pki:
    """A root, two intermediates below it, leaves at each depth, and their files."""

    directory: pathlib.Path
    root: Issued
    inter: Issued
    inter2: Issued
    leaf: Issued

    def file(self, name: str, text: str) -> str:
        path = self.directory / name
        path.write_text(text)
        return str(path)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    root = make_ca("Test Root")
    inter = make_ca("Test Intermediate", issuer=root)
    inter2 = make_ca("Test Intermediate 2", issuer=inter)
    leaf = make_cert("leaf.test", issuer=inter, sans=["leaf.test", "*.leaf.test"])
    return Pki(tmp_path_factory.mktemp("doctor"), root, inter, inter2, leaf)


def doctor(*args: str) -> subprocess.CompletedProcess[str]:
    return run_cli("doctor", "cert", *args)


def doctor_json(*args: str) -> dict[str, Any]:
    out = doctor(*args, "--json")
    document: dict[str, Any] = json.loads(out.stdout)
    assert document["exit"] == out.returncode
    return document


def kinds(document: dict[str, Any], severity: str) -> set[str]:
    return {f["kind"] for f in document["findings"] if f["severity"] == severity}


def problem_lines(out: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in out.stdout.splitlines() if line.startswith("problem ")]


# ----------------------------------------------------------------------------------------------------------
# The acceptance list
# ----------------------------------------------------------------------------------------------------------


def test_a_correct_chain_with_its_key_root_and_name_is_all_ok(pki: Pki) -> None:
    bundle = pki.file("good.pem", pki.leaf.chain_pem)
    key = pki.file("good.key", pki.leaf.key_pem)
    root = pki.file("root.pem", pki.root.cert_pem)
    out = doctor(bundle, "--key", key, "--ca", root, "--name", "www.leaf.test")
    assert out.returncode == 0, out.stdout
    assert (
        "ok       certificate 1 of 2: CN=leaf.test, issued by CN=Test Intermediate; the leaf (CA:FALSE)" in out.stdout
    )
    assert "ok       certificate 2 of 2: CN=Test Intermediate, issued by CN=Test Root; an intermediate CA" in out.stdout
    assert "the leaf (CN=leaf.test) is first, and each certificate is followed by its issuer." in out.stdout
    assert "the key matches the leaf" in out.stdout
    assert "names covered by the leaf: DNS:leaf.test, DNS:*.leaf.test." in out.stdout
    assert "the leaf covers www.leaf.test" in out.stdout
    assert f"the chain verifies against {root}" in out.stdout
    assert "depth needed: 1." in out.stdout
    assert out.stdout.splitlines()[-1] == "summary: no problems, 0 warnings"
    document = doctor_json(bundle, "--key", key, "--ca", root, "--name", "www.leaf.test")
    assert kinds(document, "problem") == set() and kinds(document, "warning") == set()
    assert {"order_ok", "key_match", "name_match", "verified", "depth_needed"} <= kinds(document, "ok")


def test_a_reversed_chain_says_intermediate_before_leaf(pki: Pki) -> None:
    bundle = pki.file("reversed.pem", pki.inter.cert_pem + pki.leaf.cert_pem)
    key = pki.file("good.key", pki.leaf.key_pem)
    out = doctor(bundle, "--key", key)
    assert out.returncode == 1
    [problem] = problem_lines(out)
    assert "intermediate before leaf: certificate 1 (CN=Test Intermediate) comes first" in problem
    assert "the leaf is certificate 2 (CN=leaf.test), the one the key belongs to" in problem
    assert "key values mismatch" in problem
    assert "Fix: put the leaf first, then each issuer: CN=leaf.test, then CN=Test Intermediate." in problem
    # without the key the structure alone says which one is the leaf
    assert kinds(doctor_json(bundle), "problem") == {"leaf_not_first"}


def test_a_lone_leaf_names_the_missing_intermediate_and_the_client_errors(pki: Pki) -> None:
    bundle = pki.file("leaf-only.pem", pki.leaf.cert_pem)
    out = doctor(bundle)
    assert out.returncode == 1
    [problem] = problem_lines(out)
    assert "leaf only: the bundle holds the leaf but not its issuer, CN=Test Intermediate." in problem
    assert (
        "Clients that do not have CN=Test Intermediate fail with 20 unable to get local issuer certificate / 21 "
        "unable to verify the first certificate." in problem
    )
    assert "Fix: append the intermediate CN=Test Intermediate after the leaf." in problem
    # against the root, OpenSSL itself says 21
    root = pki.file("root.pem", pki.root.cert_pem)
    document = doctor_json(bundle, "--ca", root)
    [failed] = [f for f in document["findings"] if f["kind"] == "verify_failed"]
    assert failed["facts"] == {"code": 21, "depth": 0}
    assert "OpenSSL says 21:unable to verify the first certificate" in failed["message"]


def test_a_bundle_with_its_root_is_a_warning_not_a_problem(pki: Pki) -> None:
    bundle = pki.file("with-root.pem", pki.leaf.chain_pem + pki.root.cert_pem)
    root = pki.file("root.pem", pki.root.cert_pem)
    out = doctor(bundle, "--ca", root)
    assert out.returncode == 0, out.stdout
    assert "the root CA, self-signed (CA:TRUE)" in out.stdout
    warnings = [line for line in out.stdout.splitlines() if line.startswith("warning ")]
    assert warnings == [
        "warning  the root CA is in the bundle: certificate 3 (CN=Test Root). Clients already have it (a root is "
        "trusted only from the client's own store), and nginx and Kong send it needlessly with every handshake. "
        "Fix: remove it; keep the leaf and the intermediates."
    ]
    assert out.stdout.splitlines()[-1] == "summary: no problems, 1 warning"


def test_an_expired_leaf_is_a_problem_with_openssl_code_10(pki: Pki) -> None:
    old = make_cert("old.test", issuer=pki.inter, not_before=days(-60), not_after=days(-3))
    bundle = pki.file("expired.pem", old.chain_pem)
    root = pki.file("root.pem", pki.root.cert_pem)
    out = doctor(bundle)
    assert out.returncode == 1
    [problem] = problem_lines(out)
    assert "certificate 1 (CN=old.test) expired on" in problem
    assert "(3 days ago). Clients fail with 10 certificate has expired. Fix: renew it." in problem
    document = doctor_json(bundle, "--ca", root)
    assert kinds(document, "problem") == {"expired", "verify_failed"}
    [failed] = [f for f in document["findings"] if f["kind"] == "verify_failed"]
    assert failed["facts"]["code"] == 10


def test_a_leaf_not_yet_valid_is_a_problem_with_openssl_code_9(pki: Pki) -> None:
    early = make_cert("early.test", issuer=pki.inter, not_before=days(2), not_after=days(90))
    bundle = pki.file("early.pem", early.chain_pem)
    root = pki.file("root.pem", pki.root.cert_pem)
    out = doctor(bundle)
    assert out.returncode == 1
    [problem] = problem_lines(out)
    assert "certificate 1 (CN=early.test) is not valid yet: it starts on" in problem
    assert "Clients fail with 9 certificate is not yet valid." in problem
    document = doctor_json(bundle, "--ca", root)
    assert kinds(document, "problem") == {"not_yet_valid", "verify_failed"}
    [failed] = [f for f in document["findings"] if f["kind"] == "verify_failed"]
    assert failed["facts"] == {"code": 9, "depth": 0}


def test_a_key_mismatch_is_a_problem(pki: Pki) -> None:
    bundle = pki.file("good.pem", pki.leaf.chain_pem)
    other = pki.file("other.key", make_cert("other.test", issuer=pki.inter).key_pem)
    out = doctor(bundle, "--key", other)
    assert out.returncode == 1
    [problem] = problem_lines(out)
    assert "the key does not match the certificate: it is not the private half of the leaf" in problem
    assert "nginx and Kong refuse the pair (key values mismatch)." in problem


def test_a_name_mismatch_is_a_problem_with_x509_check_host_rules(pki: Pki) -> None:
    bundle = pki.file("good.pem", pki.leaf.chain_pem)
    out = doctor(bundle, "--name", "a.b.leaf.test")  # a wildcard covers exactly one label
    assert out.returncode == 1
    [problem] = problem_lines(out)
    assert "the leaf does not cover a.b.leaf.test" in problem
    assert 'upstream SSL certificate does not match "a.b.leaf.test"' in problem


def test_a_chain_needing_depth_2_says_which_settings_to_raise(pki: Pki) -> None:
    deep = make_cert("deep.test", issuer=pki.inter2)
    bundle = pki.file("deep.pem", deep.chain_pem)
    root = pki.file("root.pem", pki.root.cert_pem)
    out = doctor(bundle, "--ca", root)
    assert out.returncode == 0, out.stdout
    [line] = [line for line in out.stdout.splitlines() if "depth needed" in line]
    assert line.startswith("ok       depth needed: 2.")
    assert "the leaf and the root are not counted" in line
    assert "This chain has 2 intermediates (CN=Test Intermediate 2, CN=Test Intermediate)." in line
    assert "tls_verify_depth >= 2 on a service (or proxy_ssl_verify_depth globally; default 1)" in line
    assert "lua_ssl_verify_depth >= 2 for https health checks" in line
    assert "verify_depth >= 2 in mtls-auth" in line
    assert "fails with 22 certificate chain too long, as `openssl verify -verify_depth 1` does." in line


# ----------------------------------------------------------------------------------------------------------
# The depth, against OpenSSL's own command
# ----------------------------------------------------------------------------------------------------------


def openssl_verify(root: str, untrusted: str | None, leaf: str, depth: int) -> subprocess.CompletedProcess[str]:
    args = ["openssl", "verify", "-CAfile", root, "-verify_depth", str(depth)]
    if untrusted is not None:
        args += ["-untrusted", untrusted]
    return subprocess.run([*args, leaf], capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("intermediates", [0, 1, 2, 3])
def test_depth_needed_is_what_openssl_verify_accepts(pki: Pki, intermediates: int) -> None:
    issuer = pki.root
    for n in range(intermediates):
        issuer = make_ca(f"Chain CA {n + 1}", issuer=issuer)
    leaf = make_cert(f"depth{intermediates}.test", issuer=issuer)
    bundle = pki.file(f"depth{intermediates}.pem", leaf.chain_pem)
    leaf_file = pki.file(f"depth{intermediates}-leaf.pem", leaf.cert_pem)
    chain = leaf.chain_pem[len(leaf.cert_pem) :]
    untrusted = pki.file(f"depth{intermediates}-untrusted.pem", chain) if chain else None
    root = pki.file("root.pem", pki.root.cert_pem)

    document = doctor_json(bundle, "--ca", root)
    [needed] = [f for f in document["findings"] if f["kind"] == "depth_needed"]
    depth = needed["facts"]["depth"]
    assert depth == intermediates

    accepted = openssl_verify(root, untrusted, leaf_file, depth)
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    assert accepted.stdout.strip().endswith(": OK")
    if depth > 0:
        refused = openssl_verify(root, untrusted, leaf_file, depth - 1)
        assert refused.returncode != 0
        assert f"error 22 at {depth} depth lookup: certificate chain too long" in refused.stdout + refused.stderr


# ----------------------------------------------------------------------------------------------------------
# Files that are not what they should be, and usage
# ----------------------------------------------------------------------------------------------------------


def test_missing_and_wrong_files_are_problems(pki: Pki) -> None:
    missing = doctor(str(pki.directory / "nope.pem"))
    assert missing.returncode == 1
    assert f"problem  the certificate file {pki.directory / 'nope.pem'} does not exist." in missing.stdout

    key = pki.file("good.key", pki.leaf.key_pem)
    swapped = doctor(key)
    assert swapped.returncode == 1
    assert "holds a private key, not a certificate. Fix: the certificate and the key look swapped." in swapped.stdout

    directory = doctor(str(pki.directory))
    assert directory.returncode == 1
    assert "cannot be read: Is a directory." in directory.stdout


def test_usage_errors_exit_2() -> None:
    assert run_cli("doctor").returncode == 2
    out = run_cli("doctor", "cert")
    assert out.returncode == 2
    assert "the following arguments are required: file" in out.stderr
    assert run_cli("doctor", "cert", "x.pem", "--bogus").returncode == 2
