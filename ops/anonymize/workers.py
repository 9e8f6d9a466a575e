"""Anonymizing in worker processes, so that a large backup uses more than one core.

The row transforms are Python (an HMAC per value) and hold the GIL: in the backup's own
process they would be added to the reading, framing and hashing it already does, on one core.
Each worker process builds the same masks from the policy and key (handed over a pipe, never
written anywhere), and each table goes to one worker whose batches run in order, so a unique
column resolves its collisions in file order exactly as in-process: the output is the same
bytes either way.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from concurrent.futures import Future, ProcessPoolExecutor
from multiprocessing.connection import wait
from typing import Any

from ops.anonymize.mask import Anonymizer, TableMask
from ops.core.catalog import Table

Pair = tuple[bytes, bytes]  # (kept object, values to replace) of one row

_masks: dict[str, TableMask] = {}  # in a worker: its masks


def _start(policy: Any, key: bytes, tables: list[Table], everything: list[Table],
           unique: dict, keys: dict[str, dict[str, str]]) -> None:
    # A backup killed with -9 cannot stop its workers, and their task queue never closes
    # (each worker holds both of its ends): each one leaves when its parent does.
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_exit_with, args=(parent.sentinel,), daemon=True).start()
    _masks.update(Anonymizer(policy, key).masks(tables, everything, unique,
                                                lambda t: keys[t.name]))


def _exit_with(sentinel: int) -> None:
    wait([sentinel])
    os._exit(1)


def _transform(table: str, rows: list[Pair]) -> list[bytes]:
    mask = _masks[table]
    return [mask(kept, masked) for kept, masked in rows]


class MaskWorkers:
    """`count` worker processes; `submit(table, rows)` transforms a batch of one table's rows."""

    def __init__(self, anonymizer: Anonymizer, tables: list[Table], everything: list[Table],
                 unique: dict, keys: dict[str, dict[str, str]], sizes: dict[str, int],
                 count: int) -> None:
        # spawn, not fork: the backup may already run threads and hold connections
        context = multiprocessing.get_context("spawn")
        args = (anonymizer.policy, anonymizer.key, tables, everything, unique, keys)
        self._pools = [ProcessPoolExecutor(1, mp_context=context, initializer=_start,
                                           initargs=args) for _ in range(count)]
        load = [0] * count
        self._pool_of: dict[str, ProcessPoolExecutor] = {}
        for name in sorted(sizes, key=lambda n: -sizes[n]):  # biggest first, least loaded
            least = load.index(min(load))
            load[least] += sizes[name]
            self._pool_of[name] = self._pools[least]

    def submit(self, table: str, rows: list[Pair]) -> Future[list[bytes]]:
        return self._pool_of[table].submit(_transform, table, rows)

    def close(self) -> None:
        for pool in self._pools:
            pool.shutdown(wait=True, cancel_futures=True)
