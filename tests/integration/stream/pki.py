"""The stream tests' certificates, from the one factory (``tests.fixtures.certs``)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from tests.fixtures.certs import Issued, make_ca, make_cert

__all__ = ["StreamPki", "certificate_row"]


class StreamPki:
    """One root and one intermediate; the gateway's certificates, the upstreams' and the gateway's client one."""

    def __init__(self, directory: Path) -> None:
        self.root = make_ca("Stream Test Root CA", key_type="ec")
        self.inter = make_ca("Stream Test Intermediate", issuer=self.root, key_type="ec")
        self.exact = make_cert("stream-exact", self.inter, key_type="ec", sans=["stream.test", "exact.wild.test"])
        self.wild = make_cert("stream-wild", self.inter, key_type="ec", sans=["*.wild.test"])
        self.nginx_a = make_cert("nginx-a", self.inter, key_type="ec", sans=["a.pass.test"])
        self.nginx_b = make_cert("nginx-b", self.inter, key_type="ec", sans=["b.pass.test"])
        #: a lone leaf under the root, served without its issuer: unverifiable without the root (code 21)
        self.upstream = make_cert("upstream.test", self.root, key_type="ec", sans=["upstream.test", "localhost"])
        self.client = make_cert("gateway-client", self.root, key_type="ec", sans=[])
        self.stranger = make_cert("stranger-client", make_ca("Other Root", key_type="ec"), key_type="ec", sans=[])
        self.root_file = directory / "root.pem"
        self.root_file.write_text(self.root.cert_pem)

    def files(self) -> dict[str, bytes]:
        """The upstreams' files for an nginx prefix."""
        out: dict[str, bytes] = {"root.pem": self.root.cert_pem.encode()}
        for name in ("nginx_a", "nginx_b", "upstream"):
            issued: Issued = getattr(self, name)
            out[f"{name}.pem"] = (issued.cert_pem if name == "upstream" else issued.chain_pem).encode()
            out[f"{name}.key"] = issued.key_pem.encode()
        return out


def certificate_row(issued: Issued, snis: list[str], row_id: str | None = None) -> dict[str, Any]:
    """A ``certificates`` row (its chain as ``cert``) with its SNIs, as the store exports it."""
    return {"id": row_id or str(uuid.uuid4()), "cert": issued.chain_pem, "key": issued.key_pem, "snis": snis}
