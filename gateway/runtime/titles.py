"""Process titles as ``ps`` shows nginx's: ``master process <command>``, ``worker process`` (and our zygote).

Only with ``worker_processes`` > 1, where there are several processes to tell apart; a single-process gateway keeps
the command line it was started with. ``setproctitle`` rewrites the argv area, so ``/proc/<pid>/cmdline`` shows it.
"""

from __future__ import annotations

import sys

from setproctitle import setproctitle

__all__ = ["master", "worker", "zygote"]


def master() -> None:
    setproctitle("gateway: master process " + " ".join(sys.argv))


def zygote() -> None:
    setproctitle("gateway: zygote process")


def worker() -> None:
    setproctitle("gateway: worker process")
