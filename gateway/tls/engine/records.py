"""TLS records read on the wire, without OpenSSL: the ServerHello resumption probe.

The probe tells whether the server resumed a session, which pyOpenSSL cannot (no ``SSL_session_reused``). (Record
counting, which kept pyOpenSSL's ``WantReadError`` out of the read loop, went when the data path moved to direct
calls in ``raw.py``: ``SSL_read``'s return value says "no more data" without an exception.)
"""

from __future__ import annotations

from typing import Final

__all__ = ["PROBE_LIMIT", "probe_resumption"]


_HRR_RANDOM: Final = bytes.fromhex("cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c")
PROBE_LIMIT: Final = 32768


def probe_resumption(buf: bytes) -> bool | None:
    """Decide resumption from the server's first flight, as plaintext records on the wire.

    TLS 1.3: the ServerHello carries ``pre_shared_key`` exactly when a PSK (a ticket) was accepted. TLS 1.2:
    an abbreviated handshake goes ServerHello -> [NewSessionTicket] -> ChangeCipherSpec, a full one sends
    Certificate / ServerKeyExchange / ServerHelloDone next. Returns ``None`` while more bytes are needed.
    """
    pos = 0
    n = len(buf)
    hello_seen = False
    while True:
        if n - pos < 5:
            return None
        rtype = buf[pos]
        rlen = (buf[pos + 3] << 8) | buf[pos + 4]
        end = pos + 5 + rlen
        if end > n:
            return None
        body = buf[pos + 5 : end]
        pos = end
        if hello_seen:
            if rtype == 20:
                return True
            return rtype == 22 and body[:1] == b"\x04"
        if rtype == 20:  # a TLS 1.3 compatibility CCS after a HelloRetryRequest
            continue
        if rtype != 22 or len(body) < 42 or body[0] != 2:
            return False
        hs_end = 4 + ((body[1] << 16) | (body[2] << 8) | body[3])
        random = body[6:38]
        off = 39 + body[38]
        off += 3  # cipher suite, compression
        ext_end = min(off + 2 + ((body[off] << 8) | body[off + 1]) if off + 1 < len(body) else off, hs_end)
        off += 2
        tls13 = psk = False
        while off + 4 <= ext_end:
            etype = (body[off] << 8) | body[off + 1]
            elen = (body[off + 2] << 8) | body[off + 3]
            if etype == 43 and body[off + 4 : off + 6] == b"\x03\x04":
                tls13 = True
            elif etype == 41:
                psk = True
            off += 4 + elen
        if random == _HRR_RANDOM:
            continue
        if tls13:
            return psk
        hello_seen = True
        if hs_end < len(body):  # the next handshake message shares the record
            return body[hs_end] == 4
