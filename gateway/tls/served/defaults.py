"""The listener's default certificates: ``ssl_cert``/``ssl_cert_key``, or Kong's auto-generated pairs.

Rules (Kong's ``kong/conf_loader/parse.lua`` and ``kong/cmd/utils/prefix_handler.lua``):

- ``ssl_cert`` and ``ssl_cert_key`` are parallel lists. Each entry is, in this order of trial, an existing path, a
  base64 (or base64url) encoding of the PEM, or the PEM itself (Kong's ``try_decode_base64`` keeps the value when
  it does not decode). A certificate entry may hold a chain: leaf first, then intermediates, all served.
- When both lists are empty, two pairs are generated once into ``<prefix>/ssl/``: ``kong-default.crt/.key``
  (RSA 2048) and ``kong-default-ecdsa.crt/.key`` (P-256), self-signed for ``CN=localhost``, valid 20 years
  (``20 * 365`` days, as Kong counts), ``basicConstraints CA:FALSE`` critical, ``extendedKeyUsage
  serverAuth,clientAuth`` and a hashed subject key identifier. Later starts reuse them.
- Keys are written with mode 0600 from the first byte (Kong pre-creates them that way) and every file is written
  to a temporary name and renamed, so a crash never leaves half a PEM behind.

One deliberate difference: Kong generates only when *both* files of a pair are missing (and nginx then fails
on a lone or corrupt file); we regenerate a pair whenever it is missing, unreadable, or its key does not match,
since these files belong to the gateway and a broken one would otherwise stop every start.

Errors are ``ConfigError`` with Kong's messages (``ssl_cert: failed loading certificate from <value>``, from the one
reader of PEM settings, ``gateway.tls.pem_settings``); this runs at start-up and on reload, never per handshake.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Final, Protocol

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gateway.settings import ConfigError
from gateway.tls.pem_settings import read_pem_setting

if TYPE_CHECKING:
    from gateway.settings import Settings

__all__ = [
    "DEFAULT_FILES",
    "DEFAULT_SUBJECT",
    "PemPair",
    "ensure_default_certificates",
    "generate_default_pair",
    "load_default_pairs",
]

DEFAULT_SUBJECT: Final = x509.Name(
    [
        x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
        x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "California"),
        x509.NameAttribute(NameOID.LOCALITY_NAME, "San Francisco"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Kong"),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "IT Department"),
        x509.NameAttribute(NameOID.COMMON_NAME, "localhost"),
    ]
)
"""Subject and issuer of the generated pairs, attribute order as Kong adds them."""

DEFAULT_FILES: Final = (
    ("rsa", "kong-default.crt", "kong-default.key"),
    ("ecdsa", "kong-default-ecdsa.crt", "kong-default-ecdsa.key"),
)
"""(key type, certificate file, key file) under ``<prefix>/ssl/``, in the order nginx loads them."""

_VALIDITY: Final = datetime.timedelta(seconds=86400 * 20 * 365)


class _Log(Protocol):
    def notice(self, message: str) -> None: ...

    def warn(self, message: str) -> None: ...


@dataclass(frozen=True, slots=True)
class PemPair:
    """A certificate chain (leaf first) and its private key, both PEM bytes, plus where they came from."""

    cert: bytes
    key: bytes
    source: str = "<inline>"
    #: Kong's pair generated under ``<prefix>/ssl/`` (no ``ssl_cert`` set), for the decision records
    generated: bool = False


def load_default_pairs(settings: Settings, log: _Log | None = None) -> tuple[PemPair, ...]:
    """The default certificate pairs of the proxy listener: ``ssl_cert``/``ssl_cert_key``, else Kong's generated pair.

    The PEMs are checked for shape here; OpenSSL parses them when the certificate index compiles its contexts.

    Raises:
        ConfigError: mismatched list lengths or an entry that is neither a file, base64 nor PEM.
    """
    certs, keys = settings.ssl_cert, settings.ssl_cert_key
    if certs and not keys:
        raise ConfigError("ssl_cert_key must be specified")
    if keys and not certs:
        raise ConfigError("ssl_cert must be specified")
    if len(certs) != len(keys):
        raise ConfigError(
            f"ssl_cert was specified {len(certs)} times while ssl_cert_key was specified {len(keys)} times"
        )
    if not certs:
        return ensure_default_certificates(settings.prefix, log)
    pairs = []
    for cert_value, key_value in zip(certs, keys, strict=True):
        cert = read_pem_setting("ssl_cert", cert_value, "certificate")
        key = read_pem_setting("ssl_cert_key", key_value, "key")
        source = cert_value if os.path.exists(cert_value) else "ssl_cert"
        pairs.append(PemPair(cert, key, source))
    return tuple(pairs)


# --------------------------------------------------------------------------------------------- generation
def generate_default_pair(key_type: str, now: datetime.datetime | None = None) -> PemPair:
    """A fresh self-signed ``CN=localhost`` pair with Kong's properties; ``key_type`` is ``rsa`` or ``ecdsa``."""
    private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    if key_type == "rsa":
        private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    elif key_type == "ecdsa":
        private_key = ec.generate_private_key(ec.SECP256R1())
    else:
        raise ValueError(f"key_type must be 'rsa' or 'ecdsa', not {key_type!r}")
    not_before = (now or datetime.datetime.now(datetime.UTC)).replace(microsecond=0)
    serial = int.from_bytes(os.urandom(16), "big") or 1  # Kong: BN from 16 random bytes
    certificate = (
        x509.CertificateBuilder()
        .subject_name(DEFAULT_SUBJECT)
        .issuer_name(DEFAULT_SUBJECT)
        .public_key(private_key.public_key())
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_before + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(private_key.public_key()), critical=False)
        .sign(private_key, hashes.SHA256())
    )
    cert_pem = certificate.public_bytes(serialization.Encoding.PEM)
    key_pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return PemPair(cert_pem, key_pem, f"generated {key_type}")


def _existing_pair(cert_path: str, key_path: str) -> PemPair | None:
    """The pair on disk if both files parse and the key belongs to the certificate, else None."""
    try:
        with open(cert_path, "rb") as handle:
            cert_pem = handle.read()
        with open(key_path, "rb") as handle:
            key_pem = handle.read()
        cert = x509.load_pem_x509_certificate(cert_pem)
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (OSError, ValueError, TypeError):
        return None
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    if cert.public_key().public_bytes(serialization.Encoding.DER, spki) != key.public_key().public_bytes(
        serialization.Encoding.DER, spki
    ):
        return None
    return PemPair(cert_pem, key_pem, cert_path)


def _write_atomically(path: str, data: bytes, mode: int) -> None:
    """Write ``data`` to ``path`` through a temporary sibling created with ``mode`` (0600 keys never widen)."""
    tmp = f"{path}.tmp{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def ensure_default_certificates(prefix: str, log: _Log | None = None) -> tuple[PemPair, PemPair]:
    """Kong's two default pairs under ``<prefix>/ssl/``: reused when present and valid, generated otherwise.

    Returns:
        ``(rsa_pair, ecdsa_pair)``, the order nginx loads them in.
    """
    ssl_dir = os.path.join(prefix, "ssl")
    os.makedirs(ssl_dir, exist_ok=True)
    pairs = []
    for key_type, cert_name, key_name in DEFAULT_FILES:
        cert_path, key_path = os.path.join(ssl_dir, cert_name), os.path.join(ssl_dir, key_name)
        pair = _existing_pair(cert_path, key_path)
        if pair is None:
            if log is not None and (os.path.exists(cert_path) or os.path.exists(key_path)):
                log.warn(f"default SSL certificate {cert_path} or its key is unreadable or mismatched; regenerating")
            elif log is not None:
                log.notice(f"generating default SSL certificate ({cert_path}) and key ({key_path})")
            generated = generate_default_pair(key_type)
            _write_atomically(key_path, generated.key, 0o600)
            _write_atomically(cert_path, generated.cert, 0o644)
            pair = PemPair(generated.cert, generated.key, cert_path)
        pairs.append(replace(pair, generated=True))
    return pairs[0], pairs[1]
