"""``gateway check CONF`` loads the certificate, key and CA files the configuration names, as ``start`` does.

One test per problem ``start`` refuses (missing, unreadable, not PEM, key mismatch, reversed chain; the missing
``client_ssl_cert``, ``proxy_ssl_trusted_certificate`` and ``lua_ssl_trusted_certificate`` files), that warnings
(an expired certificate) do not fail, that a good configuration still says "valid", and that ``start`` refuses what
``check`` refuses.
"""

from __future__ import annotations

import pathlib
import subprocess
from dataclasses import dataclass

import pytest

from tests.fixtures.certs import Issued, days, make_ca, make_cert
from tests.fixtures.gateway_process import GATEWAY, make_gateway, run_cli


@dataclass
class Files:
    """PEM files for the settings: a good served pair, a good client pair, a CA file, and broken variants."""

    directory: pathlib.Path
    root: Issued
    inter: Issued
    leaf: Issued

    def write(self, name: str, text: str) -> pathlib.Path:
        path = self.directory / name
        path.write_text(text)
        return path

    def conf(self, text: str) -> pathlib.Path:
        return self.write("gateway.conf", text)


@pytest.fixture
def files(tmp_path: pathlib.Path) -> Files:
    root = make_ca("Check Root")
    inter = make_ca("Check Intermediate", issuer=root)
    leaf = make_cert("check.test", issuer=inter)
    f = Files(tmp_path, root, inter, leaf)
    f.write("chain.pem", leaf.chain_pem)
    f.write("leaf.key", leaf.key_pem)
    f.write("root.pem", root.cert_pem)
    return f


def check(conf: pathlib.Path) -> subprocess.CompletedProcess[str]:
    return run_cli("check", str(conf))


def errors(out: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in out.stderr.splitlines() if line.startswith("Error: ")]


def served(files: Files, cert: str, key: str) -> pathlib.Path:
    return files.conf(f"proxy_listen = 127.0.0.1:8000, 127.0.0.1:8443 ssl\nssl_cert = {cert}\nssl_cert_key = {key}\n")


def test_a_good_configuration_with_every_file_setting_is_valid(files: Files) -> None:
    client = make_cert("client.test", issuer=files.inter)
    client_cert = files.write("client.pem", client.chain_pem)
    client_key = files.write("client.key", client.key_pem)
    d = files.directory
    conf = files.conf(
        f"ssl_cert = {d / 'chain.pem'}\nssl_cert_key = {d / 'leaf.key'}\n"
        f"client_ssl = on\nclient_ssl_cert = {client_cert}\nclient_ssl_cert_key = {client_key}\n"
        f"proxy_ssl_trusted_certificate = {d / 'root.pem'}\n"
        f"lua_ssl_trusted_certificate = system, {d / 'root.pem'}\n"
    )
    out = check(conf)
    assert out.returncode == 0, out.stderr
    assert out.stdout == f"configuration at {conf} is valid\n"
    assert out.stderr == ""


def test_a_missing_certificate_file(files: Files) -> None:
    missing = files.directory / "missing.pem"
    out = check(served(files, str(missing), str(files.directory / "leaf.key")))
    assert out.returncode == 1
    assert errors(out) == [
        f"Error: ssl_cert ({missing}): no such file. Fix: check the path (a relative path starts in the directory "
        "gateway runs in).",
        f"Error: gateway start refuses the proxy's ssl listener: ssl_cert: failed loading certificate from {missing}",
    ]
    assert "is valid" not in out.stdout


def test_an_unreadable_key_file(files: Files) -> None:
    unreadable = files.directory / "key-dir"
    unreadable.mkdir()  # the tests may run as root, who reads any file: a directory cannot be read by anyone
    out = check(served(files, str(files.directory / "chain.pem"), str(unreadable)))
    assert out.returncode == 1
    assert f"Error: ssl_cert_key ({unreadable}): cannot be read: Is a directory." in errors(out)[0]
    assert f"ssl_cert_key: failed loading key from {unreadable}: Is a directory" in errors(out)[1]


def test_a_file_that_is_not_pem(files: Files) -> None:
    junk = files.write("junk.pem", "this is not a certificate\n")
    out = check(served(files, str(junk), str(files.directory / "leaf.key")))
    assert out.returncode == 1
    assert errors(out)[0] == f"Error: ssl_cert ({junk}): holds no PEM block ('-----BEGIN ...'). Fix: give a PEM file."


def test_a_key_that_does_not_match(files: Files) -> None:
    other = files.write("other.key", make_cert("other.test", issuer=files.inter).key_pem)
    out = check(served(files, str(files.directory / "chain.pem"), str(other)))
    assert out.returncode == 1
    first, start = errors(out)
    assert first.startswith(f"Error: ssl_cert_key ({other}): the key does not match the certificate")
    assert start.endswith("could not set configured private key: key values mismatch")


def test_a_reversed_chain_says_intermediate_before_leaf(files: Files) -> None:
    reversed_chain = files.write("reversed.pem", files.inter.cert_pem + files.leaf.cert_pem)
    out = check(served(files, str(reversed_chain), str(files.directory / "leaf.key")))
    assert out.returncode == 1
    first, start = errors(out)
    assert first.startswith(f"Error: ssl_cert ({reversed_chain}): intermediate before leaf: certificate 1 (CN=Check")
    assert "Fix: put the leaf first" in first
    assert start.endswith("key values mismatch")


def test_an_expired_certificate_is_a_warning_because_start_serves_it(files: Files) -> None:
    old = make_cert("old.test", issuer=files.inter, not_before=days(-30), not_after=days(-2))
    cert = files.write("old.pem", old.chain_pem)
    key = files.write("old.key", old.key_pem)
    conf = served(files, str(cert), str(key))
    out = check(conf)
    assert out.returncode == 0, out.stderr
    assert errors(out) == []
    assert f"Warning: ssl_cert ({cert}): certificate 1 (CN=old.test) expired on" in out.stderr
    assert "Clients fail with 10 certificate has expired." in out.stderr
    assert out.stdout == f"configuration at {conf} is valid\n"


@pytest.mark.parametrize(
    ("setting", "extra", "start_words"),
    [
        ("client_ssl_cert", "client_ssl = on\nclient_ssl_cert_key = {key}\n", "the upstream TLS settings"),
        ("proxy_ssl_trusted_certificate", "", "the upstream TLS settings"),
        ("lua_ssl_trusted_certificate", "", "the health-check TLS settings"),
    ],
)
def test_a_missing_upstream_side_file(files: Files, setting: str, extra: str, start_words: str) -> None:
    missing = files.directory / "missing.pem"
    conf = files.conf(f"{setting} = {missing}\n" + extra.format(key=files.directory / "leaf.key"))
    out = check(conf)
    assert out.returncode == 1
    first, start = errors(out)
    assert first == (
        f"Error: {setting} ({missing}): no such file. Fix: check the path (a relative path starts in the directory "
        "gateway runs in)."
    )
    assert start.startswith(f"Error: gateway start refuses {start_words}")
    assert start.endswith(f"{setting}: failed loading {missing}")


def test_a_setting_start_does_not_read_is_a_warning(files: Files) -> None:
    conf = files.conf(f"proxy_listen = 127.0.0.1:8000\nssl_cert = {files.directory / 'nope.pem'}\nssl_cert_key = x\n")
    out = check(conf)
    assert out.returncode == 0, out.stderr
    assert "Warning: ssl_cert is set but no proxy_listen entry has ssl: start does not read it." in out.stderr


#: each case start refuses: the configuration ({d}: the files' directory) and start's reason, which check says too
START_CASES: dict[str, tuple[str, str]] = {
    "missing ssl_cert": (
        "ssl_cert = {d}/no.pem\nssl_cert_key = {d}/leaf.key\n",
        "ssl_cert: failed loading certificate from {d}/no.pem",
    ),
    "unreadable ssl_cert_key": (
        "ssl_cert = {d}/chain.pem\nssl_cert_key = {d}/key-dir\n",
        "ssl_cert_key: failed loading key from {d}/key-dir: Is a directory",
    ),
    "mismatched ssl_cert_key": (
        "ssl_cert = {d}/chain.pem\nssl_cert_key = {d}/other.key\n",
        "could not set configured private key: key values mismatch",
    ),
    "reversed ssl_cert": (
        "ssl_cert = {d}/reversed.pem\nssl_cert_key = {d}/leaf.key\n",
        "could not set configured private key: key values mismatch",
    ),
    "missing client_ssl_cert": (
        "client_ssl = on\nclient_ssl_cert = {d}/no.pem\nclient_ssl_cert_key = x\n",
        "client_ssl_cert: failed loading {d}/no.pem",
    ),
    "missing proxy_ssl_trusted_certificate": (
        "proxy_ssl_trusted_certificate = {d}/no.pem\n",
        "proxy_ssl_trusted_certificate: failed loading {d}/no.pem",
    ),
    "missing lua_ssl_trusted_certificate": (
        # start reads it for the first upstream with https active health checks (Kong: at start, always)
        "database = off\ndeclarative_config = {d}/kong.yml\nlua_ssl_trusted_certificate = {d}/no.pem\n",
        "lua_ssl_trusted_certificate: failed loading {d}/no.pem",
    ),
}

HTTPS_CHECKED_UPSTREAM = """_format_version: "3.0"
upstreams:
- name: checked
  healthchecks:
    active:
      type: https
      healthy: {interval: 5}
  targets:
  - target: 127.0.0.1:9
"""


@pytest.mark.parametrize("case", sorted(START_CASES))
def test_start_refuses_what_check_refuses(files: Files, case: str) -> None:
    d = files.directory
    files.write("reversed.pem", files.inter.cert_pem + files.leaf.cert_pem)
    files.write("other.key", make_cert("other.test", issuer=files.inter).key_pem)
    files.write("kong.yml", HTTPS_CHECKED_UPSTREAM)
    (d / "key-dir").mkdir()
    conf_text, reason = (text.format(d=d) for text in START_CASES[case])
    gw = make_gateway(d, conf_text=conf_text, ssl=True)
    assert gw.conf is not None
    checked = run_cli("check", str(gw.conf), env=gw.env)
    started = subprocess.run(
        [GATEWAY, "start", "-p", str(gw.prefix), "-c", str(gw.conf)],
        env=gw.env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert started.returncode == 1, started.stdout
    assert checked.returncode == 1, checked.stderr
    assert "is valid" not in checked.stdout
    # both say start's own reason
    assert reason in started.stderr
    assert reason in checked.stderr
