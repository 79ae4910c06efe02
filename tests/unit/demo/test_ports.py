"""``free_port``: every port handed out is bindable and none is handed out twice in one process."""

from __future__ import annotations

import socket
from unittest import mock

import pytest

from gateway.demo import ports


def test_ports_in_a_row_are_distinct_and_bindable() -> None:
    chosen = [ports.free_port() for _ in range(300)]
    assert len(set(chosen)) == len(chosen)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", chosen[-1]))


def test_a_port_the_kernel_repeats_is_skipped() -> None:
    """The CI failure's shape: the kernel answers port 0 with the same port twice; the second draw must differ."""
    first = ports.free_port()
    real_bind = socket.socket.bind
    answers = iter([first, 0])

    def bind_repeating(self: socket.socket, address: tuple[str, int]) -> None:
        real_bind(self, (address[0], next(answers, 0)) if address[1] == 0 else address)

    with mock.patch.object(socket.socket, "bind", bind_repeating):
        second = ports.free_port()
    assert second != first


def test_gives_up_loudly_when_the_kernel_only_repeats() -> None:
    first = ports.free_port()
    real_bind = socket.socket.bind

    def bind_always(self: socket.socket, address: tuple[str, int]) -> None:
        real_bind(self, (address[0], first))

    with mock.patch.object(socket.socket, "bind", bind_always), pytest.raises(RuntimeError, match="no fresh"):
        ports.free_port()
