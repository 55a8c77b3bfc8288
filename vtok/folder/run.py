"""Encode a folder of videos into a mirrored folder of `.vtok` files, with a manifest, resumably.

The driver (this process) plans the jobs (vtok.folder.plan), hands them to a backend that returns a
record per file as it finishes (vtok.folder.pool on this machine, vtok.folder.ray_encode on a Ray
cluster), and alone appends the records to the manifest (vtok.folder.manifest).
"""

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from vtok.budget.runs import DEFAULT_THRESHOLD as RLT_DEFAULT
from vtok.errors import MediaError, UsageError, Warn, default_warn
from vtok.folder.manifest import MANIFEST_NAME, ManifestWriter, Record, read_manifest
from vtok.folder.plan import Job, Settings, check_folders, find_sources, make_jobs, pending
from vtok.model.registry import DEFAULT_MODEL

__all__ = ["encode_folder", "FolderResult", "FolderProgress", "run_jobs"]

# (files just finished, files to do, a note such as "1,234 frames, 40.1 frames/s")
FolderProgress = Callable[[int, int, str], None]
Backend = Callable[[list[Job], Settings], Iterator[Record]]


@dataclass
class FolderResult:
    """What a folder encode did. `records` are this run's, in the order the files finished."""

    out_dir: Path
    manifest: Path
    found: int = 0  # source files found
    current: int = 0  # already done by an earlier run, left as they were
    ok: int = 0
    failed: int = 0
    skipped: int = 0
    frames: int = 0  # encoded by this run
    tokens: int = 0
    seconds: float = 0.0  # wall time of this run's encodes, start to end
    records: list[Record] = field(default_factory=list)

    def add(self, r: Record) -> None:
        self.records.append(r)
        setattr(self, r.status, getattr(self, r.status) + 1)
        self.frames, self.tokens = self.frames + r.frames, self.tokens + r.tokens


def encode_folder(
    *,
    src: Path,
    dst: Path,
    model: str = DEFAULT_MODEL,
    threshold: float = 0.0,
    rlt_threshold: float = RLT_DEFAULT,
    refine: int = 0,
    device: str = "auto",
    jobs: int = 1,
    glob: str | None = None,
    force: bool = False,
    ray: bool = False,
    ray_address: str | None = None,
    progress: FolderProgress | None = None,
    warn: Warn | None = None,
) -> FolderResult:
    """Encode every video under the folder `src` to `dst`, mirroring the tree (`x/y.mp4` -> `x/y.vtok`),
    and append a record per file to `dst/manifest.jsonl` (docs/dataset.md).

    model, threshold, rlt_threshold, refine, device: as vtok.codec.encode_file, for every file.
    jobs: files encoded at once: processes on this machine (each with its own model and cores // jobs
      torch threads), or, with `ray`, Ray actors.
    glob: take the files whose path relative to `src` matches this fnmatch pattern (`*` matches `/`
      too) instead of every file with a video extension.
    force: encode every file again; otherwise files done by an earlier run (same size, modification
      time and settings, output present) are left as they are, and the others are redone.
    ray, ray_address: run on Ray (vtok.folder.ray_encode): the cluster at `ray_address`, else
      $RAY_ADDRESS, else a local instance; an address alone implies `ray`.
    warn: gets one sentence per thing worth knowing: links skipped while walking, and what the
      encoder changed in each file (also kept in its record).
    A file that fails is recorded as "failed" and the others go on: check `FolderResult.failed`.
    """
    src, dst, warn = Path(src), Path(dst), warn or default_warn
    ray = ray or ray_address is not None
    if jobs < 1:
        raise UsageError(f"jobs must be at least 1, not {jobs}", option="jobs")
    settings = Settings.check(model=model, threshold=threshold, rlt_threshold=rlt_threshold, device=device,
                              refine=refine, local=not ray)  # fmt: skip
    check_folders(src, dst)
    sources = find_sources(src, glob, warn)
    if not sources:
        raise MediaError(f"{src}: no videos found" + (f" matching {glob!r}" if glob else ""))
    if ray:
        from vtok.folder.ray_encode import ray_backend

        backend = ray_backend(workers=jobs, address=ray_address, quiet=True)
    else:
        backend = lambda todo, s: _local(todo, s, jobs)  # noqa: E731
    return run_jobs(sources, root=src, out_dir=dst, settings=settings, force=force, backend=backend,
                    progress=progress, warn=warn)  # fmt: skip


def _local(todo: list[Job], settings: Settings, jobs: int) -> Iterator[Record]:
    from vtok.folder.pool import local_records

    return local_records(todo, settings, jobs)


def run_jobs(sources: list[Path], *, root: Path, out_dir: Path, settings: Settings, force: bool, backend: Backend,
             progress: FolderProgress | None = None, warn: Warn | None = None) -> FolderResult:  # fmt: skip
    """Plan `sources` (files under `root`) against `out_dir`'s manifest, run what is pending on `backend`
    and append each record as it comes. The part that folder and Ray encodes share."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = out_dir / MANIFEST_NAME
    jobs, early = make_jobs(sources, root, out_dir)
    todo = pending(jobs, read_manifest(manifest), settings, force)
    result = FolderResult(out_dir, manifest, found=len(jobs) + len(early), current=len(jobs) - len(todo))
    start = time.perf_counter()
    with ManifestWriter(manifest) as writer:
        for r in early:
            writer.append(r)
            result.add(r)
        records = backend(todo, settings) if todo else iter(())
        _collect(records, writer, result, len(todo), progress, warn or default_warn)
    result.seconds = time.perf_counter() - start
    return result


def _collect(records: Iterable[Record], writer: ManifestWriter, result: FolderResult, total: int,
             progress: FolderProgress | None, warn: Warn) -> None:  # fmt: skip
    start = time.perf_counter()
    for r in records:
        writer.append(r)
        result.add(r)
        for w in r.warnings:  # each already names its source
            warn(w)
        if progress:
            fps = result.frames / max(time.perf_counter() - start, 1e-9)
            progress(1, total, f"{result.frames:,} frames, {fps:.1f} frames/s")
