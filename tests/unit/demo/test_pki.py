"""The demo's PKI has the shape its steps rely on, checked with the gateway's own chain verification."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from gateway.demo.pki import DemoPki
from gateway.doctor.trust import depth_needed
from gateway.tls.engine.x509 import TrustStore, load_pem_chain, verify_chain


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DemoPki:
    return DemoPki.make(tmp_path_factory.mktemp("demo-pki"))


def test_the_verify_upstreams_need_depth_1_and_2_against_the_root(pki: DemoPki) -> None:
    root, empty = TrustStore([pki.root.cert]), TrustStore(())
    chain = load_pem_chain(pki.verify_upstream.chain_pem)
    assert len(chain) == 2 and depth_needed(chain, root, 5) == 1
    assert verify_chain(chain, empty, 1).code == 20  # step 9
    assert verify_chain(chain, root, 1).ok  # step 10
    deep = load_pem_chain(pki.deep_upstream.chain_pem)
    assert len(deep) == 3  # leaf, Demo Issuing CA, Demo Intermediate CA: the root is not sent
    assert depth_needed(deep, root, 5) == 2
    assert verify_chain(deep, root, 1).code == 22  # step 11


def test_the_learners_leaf_alone_does_not_verify_and_with_its_intermediate_does(pki: DemoPki) -> None:
    root = TrustStore([pki.root.cert])
    assert verify_chain([pki.learner.cert], root).code == 21  # step 3, as mtls-auth logs it
    assert verify_chain(load_pem_chain(pki.learner.chain_pem), root).ok  # step 4


def test_files_are_written_without_spaces_and_keys_are_private(pki: DemoPki) -> None:
    names = sorted(p.name for p in Path(pki.directory).iterdir())
    assert "demo-root-ca.crt" in names and "learner.chain.crt" in names
    assert all(" " not in name for name in names)
    for identity in pki.identities():
        assert stat.S_IMODE(identity.files["key"].stat().st_mode) == 0o600
    assert pki.served.cert.subject.rfc4514_string() == "CN=demo.test"
