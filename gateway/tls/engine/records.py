"""TLS records read on the wire, without OpenSSL: counting complete records, and the ServerHello resumption probe.

Both serve the session's data path (see ``session``). The probe tells whether the server resumed a session,
which pyOpenSSL cannot (no ``SSL_session_reused``). Counting records keeps the read loop free of pyOpenSSL's
``WantReadError`` (raising it costs as much as the read itself): incoming TLS records are counted from their
5-byte headers as the ciphertext arrives. After the handshake, each successful ``recv`` consumes at least one
complete record, so once as many reads as complete records have succeeded the BIO holds no complete record and
the loop stops without an exception. A record that carried no application data (a TLS 1.3 ticket or key update)
makes the count too high, which only costs the usual ``WantReadError`` - and that case is exactly when OpenSSL
may have written something, so the outgoing BIO is drained then (and never after a clean data-only read, where
nothing can have been written).
"""

from __future__ import annotations

from typing import Final

__all__ = ["PROBE_LIMIT", "count_records", "probe_resumption"]


def count_records(data: bytes, partial_header: bytes, need: int) -> tuple[int, bytes, int]:
    """Complete TLS records in ``data``, continuing the framing left from earlier calls.

    ``partial_header`` is the start of a record header an earlier call ended in, ``need`` the bytes still missing
    from the record it was in; returns the count and the framing state to pass to the next call.
    """
    n = len(data)
    pos = 0
    count = 0
    if partial_header:
        hdr = partial_header + data[: 5 - len(partial_header)]
        if len(hdr) < 5:
            return 0, hdr, need
        pos = 5 - len(partial_header)
        need = (hdr[3] << 8) | hdr[4]
        if need == 0:
            count = 1
    while True:
        if need:
            if pos + need > n:
                return count, b"", need - (n - pos)
            pos += need
            need = 0
            count += 1
        if pos == n:
            return count, b"", 0
        if n - pos < 5:
            return count, data[pos:], 0
        need = (data[pos + 3] << 8) | data[pos + 4]
        pos += 5
        if need == 0:
            count += 1


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
