"""The allocator setting of the `vtok` command (vtok.allocator)."""

import subprocess
import sys

import pytest

from vtok import allocator

glibc = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")


@glibc
def test_it_is_set_unless_the_user_chose(monkeypatch):
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    assert allocator.one_arena() is True
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert allocator.one_arena() is False


@glibc
def test_memory_a_thread_freed_serves_the_main_thread():
    # a thread allocates 24 MB in 96 KB blocks (under the mmap threshold: from its arena), frees
    # all but the last, which keeps its heap from shrinking; then the main thread asks for
    # as much: from the freed blocks with one arena, from new pages without
    code = """
import ctypes, sys, threading
from vtok.allocator import one_arena
if sys.argv[1] == "set":
    assert one_arena()
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype, libc.malloc.argtypes, libc.free.argtypes = ctypes.c_void_p, [ctypes.c_size_t], [ctypes.c_void_p]
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 >> 20
def grab(n=256, size=96 << 10):
    blocks = [libc.malloc(size) for _ in range(n)]
    for b in blocks:
        ctypes.memset(b, 1, size)
    return blocks
def worker():
    blocks = grab()
    for b in blocks[:-1]:  # the last, above the others, stays
        libc.free(b)
t = threading.Thread(target=worker); t.start(); t.join()
before = rss(); grab(); print(rss() - before)
"""
    got = {}
    for mode in ("set", "default"):
        env = {"PATH": "/usr/bin:/bin"}
        out = subprocess.run([sys.executable, "-c", code, mode], capture_output=True, text=True, env=env, check=True)
        got[mode] = int(out.stdout.strip())
    assert got["set"] <= 2 and got["default"] >= 20, got  # MB the main thread's blocks added


def test_the_vtok_command_sets_it_first(monkeypatch):
    from vtok.cli import commands

    calls = []
    monkeypatch.setattr(allocator, "one_arena", lambda: calls.append(1) or True)
    with pytest.raises(SystemExit):
        commands.main(["--version"])
    assert calls == [1]
