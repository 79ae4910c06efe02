"""``kong_tls_certificate_expiry_timestamp_seconds``: the notAfter of every certificate the gateway serves or presents.

Which certificates, and how they are labelled (``certificate``, ``sni``):

- every ``certificates`` entity (served for its SNIs, or presented upstream as a service's or an Upstream entity's
  client certificate): ``certificate`` is its id, one sample per SNI (``sni=""`` when it has none); its ``cert_alt``
  is ``<id>/cert_alt`` with the same SNIs;
- the ``ssl`` listeners' default certificates: ``ssl_cert`` (``ssl_cert[1]``... for a list), or, when ``ssl_cert``
  is not set, the generated ``kong-default`` / ``kong-default-ecdsa``, with ``sni=""``;
- ``client_ssl_cert`` when ``client_ssl = on``, with ``sni=""``.

The value is the leaf's (the first PEM block's) notAfter as a Unix timestamp, as Kong's
``data_plane_cluster_cert_expiry_timestamp`` reports its one certificate. The configuration flow pays for it: the
PEMs are parsed when a scrape first sees a configuration version, and the result is kept until the next one.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from cryptography import x509

__all__ = ["ExpiryCache", "expiry_samples", "not_after"]

Sample = tuple[tuple[str, str], float]


def not_after(pem: str | bytes | None) -> float | None:
    """The first certificate's notAfter (Unix seconds), or None when ``pem`` holds no parsable certificate."""
    if not pem:
        return None
    data = pem.encode("utf-8", "surrogateescape") if isinstance(pem, str) else pem
    try:
        cert = x509.load_pem_x509_certificate(data)
    except ValueError:
        return None
    return cert.not_valid_after_utc.timestamp()


def _sni_names(row: Mapping[str, Any]) -> list[str]:
    names: list[str] = []
    for item in row.get("snis") or ():
        if isinstance(item, str):
            names.append(item)
        elif isinstance(item, Mapping) and isinstance(item.get("name"), str):
            names.append(item["name"])
    return sorted(names) or [""]


def _entity_samples(rows: Iterable[Mapping[str, Any]]) -> Iterator[Sample]:
    for row in rows:
        cert_id = str(row.get("id"))
        names = _sni_names(row)
        for field, label in (("cert", cert_id), ("cert_alt", f"{cert_id}/cert_alt")):
            expiry = not_after(row.get(field))
            if expiry is not None:
                for sni in names:
                    yield (label, sni), expiry


def _default_label(source: str, index: int, from_setting: bool) -> str:
    if from_setting:
        return "ssl_cert" if index == 0 else f"ssl_cert[{index}]"
    return os.path.splitext(os.path.basename(source))[0] or f"default[{index}]"


def expiry_samples(
    certificates: Iterable[Mapping[str, Any]],
    default_pairs: Sequence[Any] = (),
    default_from_setting: bool = False,
    client_ssl_cert: bytes | None = None,
) -> list[Sample]:
    """Every (``(certificate, sni)``, notAfter) pair: entities, the ssl listeners' defaults, ``client_ssl_cert``.

    ``default_pairs`` are ``tls.served.defaults.PemPair``-like objects (``cert``, ``source``);
    ``default_from_setting`` says they come from ``ssl_cert`` rather than from the generated pair.
    """
    samples = list(_entity_samples(certificates))
    for index, pair in enumerate(default_pairs):
        expiry = not_after(pair.cert)
        if expiry is not None:
            samples.append(((_default_label(str(pair.source), index, default_from_setting), ""), expiry))
    expiry = not_after(client_ssl_cert)
    if expiry is not None:
        samples.append((("client_ssl_cert", ""), expiry))
    return samples


class ExpiryCache:
    """The samples of the last configuration version seen, so that a scrape parses PEM only after a change."""

    __slots__ = ("_key", "_samples")

    def __init__(self) -> None:
        self._key: Any = None
        self._samples: list[Sample] | None = None

    def lookup(self, key: Any) -> list[Sample] | None:
        """The samples stored for ``key`` (a version and what the samples depend on), or None."""
        return self._samples if self._samples is not None and key == self._key else None

    def store(self, key: Any, samples: list[Sample]) -> None:
        self._key, self._samples = key, samples
