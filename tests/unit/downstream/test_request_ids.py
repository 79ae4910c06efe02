"""Request ids (``downstream.request.new_request_id``): Kong's shape, distinct, never shared with a forked worker."""

from __future__ import annotations

import os
import re

from gateway.downstream.request import new_request_id

_SHAPE = re.compile(r"[0-9a-f]{32}")


def test_ids_have_kongs_shape_and_do_not_repeat_across_batches() -> None:
    ids = [new_request_id() for _ in range(1000)]  # several batches
    assert all(_SHAPE.fullmatch(i) for i in ids), ids[:3]
    assert len(set(ids)) == len(ids)
    assert len({i[:8] for i in ids}) > 990  # random throughout, not a counter or a repeated batch


def test_a_forked_worker_does_not_reuse_its_parents_batch() -> None:
    new_request_id()  # the parent holds a partly used batch
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next id, then exit without running the parent's cleanup
        os.close(read_end)
        os.write(write_end, new_request_id().encode())
        os._exit(0)
    os.close(write_end)
    child = os.read(read_end, 64).decode()
    os.close(read_end)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    parent = new_request_id()
    assert _SHAPE.fullmatch(child)
    assert child != parent
