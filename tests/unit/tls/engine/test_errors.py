"""``openssl_reason``: one reader of OpenSSL's error queue, three wordings, on errors OpenSSL itself raised."""

from __future__ import annotations

import pytest
from OpenSSL import SSL, crypto

from gateway.tls.engine.errors import ReasonStyle, error_queue, openssl_reason
from tests.fixtures.certs import make_cert

#: a PEM envelope around bytes that are not DER: OpenSSL queues three errors (asn1, asn1, PEM)
BROKEN_PEM = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"


def _broken_certificate_error() -> crypto.Error:
    with pytest.raises(crypto.Error) as raised:
        crypto.load_certificate(crypto.FILETYPE_PEM, BROKEN_PEM)
    return raised.value


def _mismatch_error() -> SSL.Error:
    """A context holding one certificate, given another certificate's key: OpenSSL refuses the key."""
    one, other = make_cert("one.test"), make_cert("other.test")
    ctx = SSL.Context(SSL.TLS_SERVER_METHOD)
    ctx.use_certificate(one.cert)
    with pytest.raises(SSL.Error) as raised:
        ctx.use_privatekey(other.key)
    return raised.value


def test_the_queue_is_read_oldest_first_and_each_style_words_it() -> None:
    exc = _broken_certificate_error()
    queue = error_queue(exc)
    assert len(queue) >= 2 and all(len(item) == 3 for item in queue)
    reasons = [item[2] for item in queue]
    assert openssl_reason(exc, ReasonStyle.LAST) == reasons[-1]
    assert openssl_reason(exc) == reasons[-1]  # LAST is the default: log lines
    assert openssl_reason(exc, ReasonStyle.REASONS) == ", ".join(reasons)
    queue_text = openssl_reason(exc, ReasonStyle.QUEUE)
    assert queue_text.count("; ") == len(queue) - 1
    assert "::" not in queue_text  # empty function names are left out, not printed as empty fields
    assert queue_text.startswith(f"{queue[0][0]}:{queue[0][2]}")


def test_a_key_mismatch_reads_key_values_mismatch_in_the_loading_style() -> None:
    exc = _mismatch_error()
    assert openssl_reason(exc, ReasonStyle.REASONS) == "key values mismatch"
    assert openssl_reason(exc, ReasonStyle.LAST) == "key values mismatch"


def test_what_is_not_an_openssl_queue_falls_back_to_its_text_or_type() -> None:
    assert error_queue(ValueError("plain")) == []
    assert openssl_reason(ValueError("plain"), ReasonStyle.QUEUE) == "plain"
    assert openssl_reason(SSL.Error(), ReasonStyle.REASONS) == "Error"
    assert openssl_reason(SSL.SysCallError(104, "ECONNRESET")) == "ECONNRESET"
    assert openssl_reason(SSL.SysCallError(-1)) == "syscall error"
