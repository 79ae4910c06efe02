"""The one reader of PEM settings from kong.conf: ``ssl_cert``, ``client_ssl_cert``, the trusted-certificate lists...

Kong's rule (``kong/conf_loader``, for every certificate and key setting): a value that names an existing file is
read from it; otherwise it is base64-decoded when it decodes (``try_decode_base64``: standard base64, then base64url,
padding optional), else taken as the PEM text itself. Whatever comes out must be PEM-shaped, or the setting is
refused with Kong's ``<setting>: failed loading ...`` line.

The wording after ``failed loading`` is the one thing that differs between settings, and it is kept as each setting
had it (tests and users match on it): the served side's ``ssl_cert`` / ``ssl_cert_key`` / ``ssl_dhparam`` name what
they failed to load (``failed loading certificate from <value>``), the upstream side's settings only the value
(``failed loading <value>``).
"""

from __future__ import annotations

import base64
import binascii
import os

from gateway.settings import ConfigError

__all__ = ["decode_base64", "read_pem_setting"]


def decode_base64(value: str) -> bytes | None:
    """ngx.decode_base64, then base64url (padding optional), as Kong's ``try_decode_base64``; None if neither."""
    text = value.strip()
    padded = text + "=" * (-len(text) % 4)
    for altchars in (None, b"-_"):
        try:
            return base64.b64decode(padded, altchars=altchars, validate=True)
        except (binascii.Error, ValueError):
            continue
    return None


def read_pem_setting(key: str, value: str, what: str | None = None) -> bytes:
    """The PEM bytes of one setting value: a path, base64 of the PEM, or the PEM itself (Kong's order).

    Args:
        key: the setting name, for the error message (``ssl_cert``, ``client_ssl_cert``...).
        value: the value as written in kong.conf or the environment.
        what: ``certificate``, ``key``... for the served side's wording (``failed loading <what> from <value>``);
            None for the upstream side's (``failed loading <value>``).

    Raises:
        ConfigError: when the file cannot be read or nothing PEM-shaped comes out.
    """
    failed = f"{key}: failed loading {what} from {value}" if what is not None else f"{key}: failed loading {value}"
    if os.path.exists(value):
        try:
            with open(value, "rb") as handle:
                data = handle.read()
        except OSError as exc:
            raise ConfigError(f"{failed}: {exc.strerror}") from None
    else:
        decoded = decode_base64(value)
        data = decoded if decoded is not None else value.encode("utf-8", "surrogateescape")
    if b"-----BEGIN " not in data:
        raise ConfigError(failed)
    return data
