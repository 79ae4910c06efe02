"""The master <-> worker channel: length-prefixed JSON messages over one Unix socketpair per worker.

A message is a JSON object with a ``type`` and its fields, sent as a 4-byte big-endian length then the UTF-8 JSON.
Both ends use asyncio streams; ``send`` only queues bytes (it never awaits), ``receive`` returns ``None`` at EOF
(the other process exited or closed its end).

Messages (see ``gateway.runtime.workers`` and ``gateway.runtime.worker``):

- master -> worker: ``config`` {seq, version, config}, ``health`` {upstream, ip, port, hostname,
  healthy}, ``stats`` {id, [metrics]}, ``stop``;
- worker -> master: ``ready`` {pid, seq}, ``ack`` {seq}, ``stats`` {id, pid, counters, [metrics]: its metric
  samples when asked, ``gateway.plugins.prometheus.exporter.process_share``}, ``closed`` (after ``stop``: it no
  longer accepts).
"""

from __future__ import annotations

import asyncio
import json
import socket

__all__ = ["MAX_MESSAGE", "Channel", "Message", "encode", "int_field"]

MAX_MESSAGE = 256 * 1024 * 1024
_HEADER = 4

#: one decoded message: a JSON object, ``type`` and the fields of its kind. The values are whatever JSON the other
#: process sent: read them with ``isinstance`` or ``int_field``, never on trust
Message = dict[str, object]


def int_field(message: Message, name: str) -> int | None:
    """``message[name]`` when it is an integer (a pid, a sequence number, a port), else None."""
    value = message.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def encode(kind: str, **fields: object) -> bytes:
    """One framed message; encode once and ``send_raw`` it to many channels."""
    body = json.dumps({"type": kind, **fields}, separators=(",", ":")).encode("utf-8")
    return len(body).to_bytes(_HEADER, "big") + body


class Channel:
    """One end of a socketpair as a message stream."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    @classmethod
    async def open(cls, sock: socket.socket) -> Channel:
        reader, writer = await asyncio.open_unix_connection(sock=sock)
        return cls(reader, writer)

    @property
    def closed(self) -> bool:
        return self._writer.is_closing()

    def send(self, kind: str, **fields: object) -> None:
        self.send_raw(encode(kind, **fields))

    def send_raw(self, frame: bytes) -> None:
        if not self._writer.is_closing():
            self._writer.write(frame)

    async def drain(self) -> None:
        try:
            await self._writer.drain()
        except (ConnectionError, OSError):
            pass

    async def receive(self) -> Message | None:
        """The next message, or None at EOF (or on a broken frame, which ends the channel)."""
        try:
            header = await self._reader.readexactly(_HEADER)
            size = int.from_bytes(header, "big")
            if size > MAX_MESSAGE:
                return None
            body = await self._reader.readexactly(size)
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            return None
        try:
            message = json.loads(body)
        except ValueError:
            return None
        return message if isinstance(message, dict) else None

    def close(self) -> None:
        try:
            self._writer.close()
        except (ConnectionError, OSError, RuntimeError):
            pass
