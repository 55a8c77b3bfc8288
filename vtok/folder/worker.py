"""Encoding one file of a folder into a manifest record, with the model loaded once per worker.

`FileEncoder` is what every backend runs: the driver itself (--jobs 1), each process of the pool
(vtok.folder.pool, through `init_process` and `encode_in_process`), and each Ray actor
(vtok.folder.ray_encode).
"""

import os
import signal
import time
from pathlib import Path

from vtok.errors import VtokError
from vtok.folder.manifest import Record
from vtok.folder.plan import Job, Settings

__all__ = ["FileEncoder", "init_process", "encode_in_process"]


class FileEncoder:
    """Encodes one Job at a time into a Record. The model is loaded at the first file and kept.

    threads: torch's intra-op threads for this worker (None leaves torch's default).
    """

    def __init__(self, settings: Settings, threads: int | None = None):
        if threads:
            import torch

            torch.set_num_threads(threads)
        self.settings = settings
        self._model = None

    def __call__(self, job: Job) -> Record:
        """Encode `job.source` to `job.output` (its folder made, a previous output replaced). A failure is
        returned as a "failed" record, not raised: one bad file must not stop the others."""
        from vtok.codec.encode import encode_file
        from vtok.model.registry import load

        s, notes, start = self.settings, [], time.perf_counter()
        out = Path(job.output)
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            if self._model is None:
                self._model = load(s.entry, s.device)
            start = time.perf_counter()
            r = encode_file(src=Path(job.source), dst=out, model=self._model, threshold=s.threshold,
                            rlt_threshold=s.rlt_threshold, refine=s.refine, force=True, warn=notes.append)  # fmt: skip
        except Exception as e:
            if out.is_file():
                out.unlink()  # an output made from an older version of the source must not pass for this one
            message = str(e) if isinstance(e, VtokError) else f"{type(e).__name__}: {e}"
            return job.record("failed", seconds=time.perf_counter() - start, error=message, warnings=tuple(notes),
                              settings=s.recorded())  # fmt: skip
        return job.record("ok", frames=r.frames, tokens=r.tokens, seconds=time.perf_counter() - start,
                          warnings=tuple(notes), settings=s.recorded())  # fmt: skip


_encoder: FileEncoder | None = None  # one per pool process, made by init_process


def _terminate(signum, frame) -> None:
    raise SystemExit(128 + signum)  # unwinds the encode: its temporary files are removed on the way


def init_process(settings: Settings, threads: int) -> None:
    """The pool's initializer: the driver alone handles Ctrl-C (it then terminates the pool), and a
    termination unwinds the encode in progress so that it leaves no temporary file."""
    global _encoder
    from vtok.allocator import one_arena

    one_arena()  # as the `vtok` command does: the source decodes in a thread beside the model
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _terminate)
    _encoder = FileEncoder(settings, threads)


def encode_in_process(job: Job) -> Record:
    """Run one job in a pool process (after `init_process`)."""
    assert _encoder is not None, "init_process first"
    try:
        return _encoder(job)
    except SystemExit as e:
        os._exit(e.code if isinstance(e.code, int) else 1)  # the pool would otherwise go on to the next job
