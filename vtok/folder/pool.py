"""Running a folder's jobs on this machine: in this process (one job at a time), or in a pool of N
processes (spawned, so no torch state is forked), each with its own model and cores // N torch threads.
"""

import multiprocessing
import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool

from vtok.errors import VtokError
from vtok.folder.manifest import Record
from vtok.folder.plan import Job, Settings
from vtok.folder.worker import FileEncoder, encode_in_process, init_process

__all__ = ["local_records", "cores"]


def cores() -> int:
    """The CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def local_records(jobs: list[Job], settings: Settings, workers: int = 1) -> Iterator[Record]:
    """A record per job, in the order they finish. `workers` > 1 runs a process pool.

    Closing the iterator early, or Ctrl-C while it waits, terminates the pool's processes; each removes
    the temporary file of the encode it was in, so no partial output is left.
    """
    if workers <= 1 or len(jobs) <= 1:
        encoder = FileEncoder(settings)
        for job in jobs:
            yield encoder(job)
        return
    threads = max(1, cores() // workers)
    ctx = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=init_process, initargs=(settings, threads))
    try:
        futures = [pool.submit(encode_in_process, job) for job in jobs]
        for future in as_completed(futures):
            yield future.result()
    except BrokenProcessPool:
        raise VtokError(
            "a worker process died (killed, or out of memory?); the files finished so far are in the "
            "manifest: run again to resume"
        ) from None
    except BaseException:  # Ctrl-C, or the consumer stopped early: stop the encodes in flight now
        _terminate(pool)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _terminate(pool: ProcessPoolExecutor) -> None:
    # The executor has no public way to stop running calls; its processes are in `_processes`.
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        if process.is_alive():
            process.terminate()
