"""Peak memory on Linux: one malloc arena for the whole process.

glibc gives each thread that allocates its own arena, and each arena keeps the memory freed into
it for its own later use. `vtok decode` runs the model in a background thread beside the writer,
and `vtok encode` decodes the source in one, so the memory freed by one thread's batch cannot
serve the other's: a 720p decode (1296x720) peaked at 1.11 GB. With one arena it peaked at 0.91
to 1.02 GB (three runs) at the same speed (1.6% more wall time, within noise): both threads spend
their time in torch and FFmpeg, not in malloc.
(Returning large blocks at once, a 1 MB mmap threshold, gave 0.69 GB but made the decode 1.5x slower
in page faults.)
"""

import ctypes
import os
import sys

__all__ = ["one_arena"]

M_ARENA_MAX = -8  # mallopt's parameter number, from glibc's malloc.h


def one_arena() -> bool:
    """Make every thread of this process allocate from glibc's main arena; True if set. Does
    nothing off glibc, or when the user chose (MALLOC_ARENA_MAX in the environment)."""
    if not sys.platform.startswith("linux") or "MALLOC_ARENA_MAX" in os.environ:
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # musl and others: no mallopt
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt(M_ARENA_MAX, 1) == 1
