"""The certificates of the upstream TLS tests, generated once per test session by ``tests.fixtures.certs`` (EC keys).

Like Kong's ``spec/fixtures/mtls_certs``: a "Kong Testing Root CA" with one intermediate issuing CN-only server
and client certificates (no SAN, so the host check falls back to the CN), plus what the failure cases need: a
chain with two intermediates, an unrelated CA, a self-signed leaf, an expired leaf, and a client certificate
from another root.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from tests.fixtures.certs import Issued, days, make_ca, make_cert


def _leaf(
    cn: str,
    issuer: Issued | None,
    *,
    not_before: datetime.datetime | None = None,
    not_after: datetime.datetime | None = None,
) -> Issued:
    """A CN-only leaf (no SAN) for server and client auth."""
    return make_cert(cn, issuer=issuer, key_type="ec", sans=[], not_before=not_before, not_after=not_after)


@dataclass
class Pki:
    root: Issued
    inter: Issued
    server_localhost: Issued  # CN=localhost, root -> inter -> leaf
    server_example: Issued  # CN=example.com, same chain (the mTLS upstream)
    client_one: Issued  # CN=example.com, signed by the intermediate
    client_two: Issued  # CN=example2.com, signed by the intermediate
    client_untrusted: Issued  # from another root
    other_ca: Issued  # an unrelated CA (CA:TRUE)
    inter_a: Issued  # root -> inter_a -> inter_b -> deep leaf
    inter_b: Issued
    deep_localhost: Issued
    self_signed: Issued
    expired: Issued

    @staticmethod
    def build() -> Pki:
        root = make_ca("Kong Testing Root CA", key_type="ec")
        inter = make_ca("Kong Testing Intermediate CA", issuer=root, key_type="ec")
        other_root = make_ca("Other Root CA", key_type="ec")
        inter_a = make_ca("Deep Intermediate A", issuer=root, key_type="ec")
        inter_b = make_ca("Deep Intermediate B", issuer=inter_a, key_type="ec")
        return Pki(
            root=root,
            inter=inter,
            server_localhost=_leaf("localhost", inter),
            server_example=_leaf("example.com", inter),
            client_one=_leaf("example.com", inter),
            client_two=_leaf("example2.com", inter),
            client_untrusted=_leaf("untrusted.example.com", other_root),
            other_ca=make_ca("Yolo42.1", key_type="ec"),
            inter_a=inter_a,
            inter_b=inter_b,
            deep_localhost=_leaf("localhost", inter_b),
            self_signed=_leaf("localhost", None),
            expired=_leaf("localhost", inter, not_before=days(-30), not_after=days(-1)),
        )
