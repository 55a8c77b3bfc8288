"""What a folder encode will do: which sources, where each output goes, and which are already done.

The output tree mirrors the input tree: `IN/x/y.mp4` is encoded to `OUT/x/y.vtok`. A source is done
when its last manifest record is "ok", its size and modification time are unchanged, the settings
(model weights, thresholds) are the same, and its output exists; everything else is (re)encoded.
"""

import fnmatch
import os
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

from vtok.codec.encode import check_thresholds
from vtok.errors import MediaError, UsageError, Warn
from vtok.folder.manifest import Record
from vtok.media.find import find_media, walk_files
from vtok.model.refine import check_refine
from vtok.model.registry import ModelEntry, pick_device, resolve

__all__ = ["Settings", "Job", "check_folders", "find_sources", "make_jobs", "pending"]


@dataclass(frozen=True)
class Settings:
    """How every file of a run is encoded: vtok.codec.encode_file's keywords, the model resolved once."""

    entry: ModelEntry  # resolved by the driver, so workers load it without resolving (or downloading) again
    threshold: float
    rlt_threshold: float
    device: str
    refine: int = 0

    @classmethod
    def check(cls, *, model: str, threshold: float, rlt_threshold: float, device: str, refine: int = 0,
              local: bool = True):  # fmt: skip
        """Check the options once, before any file: a bad one fails the run, not every file.
        `local`: the device is this machine's (a Ray cluster's workers may have devices the driver lacks)."""
        check_thresholds(threshold=threshold, rlt_threshold=rlt_threshold)
        check_refine(refine)
        if local:
            pick_device(device)
        entry = resolve(model)
        return cls(replace(entry, path=entry.path.absolute()), threshold, rlt_threshold, device, refine)

    def recorded(self) -> dict:
        """What the manifest keeps of them: what decides whether an output is still current. `refine`
        only where it is used, so that records from before it existed stay current."""
        e = self.entry
        refine = {"refine": self.refine} if self.refine else {}
        return {"model": e.name, "model_sha256": e.sha256, "threshold": self.threshold,
                "rlt_threshold": self.rlt_threshold, **refine}  # fmt: skip


@dataclass(frozen=True)
class Job:
    """One source to encode. `source` and `output` are absolute; `rel` and `out_rel` are what the manifest keeps."""

    source: str
    output: str
    rel: str
    out_rel: str
    size: int
    mtime: float

    def record(self, status: str, **fields) -> Record:
        """A manifest record of this job."""
        return Record(source=self.rel, size=self.size, mtime=self.mtime, output=self.out_rel, status=status, **fields)


def check_folders(src: Path, dst: Path) -> None:
    """Refuse an input that is not a folder, and an output folder inside the input (it would be walked)."""
    if not src.is_dir():
        raise MediaError(f"{src}: no such folder")
    if dst.exists() and not dst.is_dir():
        raise UsageError(f"{dst}: is a file; a folder input needs an output folder", option="dst")
    if dst.resolve().is_relative_to(src.resolve()):
        raise UsageError(f"{dst}: the output folder is inside the input folder {src}; put it elsewhere", option="dst")


def find_sources(src: Path, glob: str | None = None, warn: Warn | None = None) -> list[Path]:
    """The files to encode under `src`: every file with a video extension (vtok.media.find), or, with
    `glob`, every file whose path relative to `src` matches it (fnmatch: `*` also matches `/`)."""
    if glob is None:
        return find_media([src], warn)[0]
    return [p for p in walk_files(src, warn) if fnmatch.fnmatchcase(p.relative_to(src).as_posix(), glob)]


def make_jobs(sources: list[Path], root: Path, out_dir: Path) -> tuple[list[Job], list[Record]]:
    """A job per source under `root`, its output mirrored under `out_dir`; and records for the sources
    that get none: "failed" when it cannot even be stat'ed, "skipped" when an earlier source (in
    sorted order) already takes its output name (x/y.mp4 and x/y.avi both make x/y.vtok)."""
    jobs, records, taken = [], [], {}
    root, out_dir = Path(root).absolute(), Path(out_dir).absolute()
    for path in sorted(Path(p).absolute() for p in sources):
        try:
            rel = PurePosixPath(path.relative_to(root).as_posix())
        except ValueError:
            raise UsageError(f"{path}: is not under {root}", option="root") from None
        out_rel = str(rel.with_suffix(".vtok"))
        try:
            st = path.stat()
        except OSError as e:
            records.append(Record(str(rel), 0, 0.0, out_rel, "failed", error=f"cannot read it ({e.strerror})"))
            continue
        if out_rel in taken:
            error = f"its output {out_rel} is already that of {taken[out_rel]}"
            records.append(Record(str(rel), st.st_size, st.st_mtime, out_rel, "skipped", error=error))
            continue
        taken[out_rel] = str(rel)
        output = os.path.join(out_dir, *rel.with_suffix(".vtok").parts)
        jobs.append(Job(str(path), output, str(rel), out_rel, st.st_size, st.st_mtime))
    return jobs, records


def pending(jobs: list[Job], latest: dict[str, Record], settings: Settings, force: bool) -> list[Job]:
    """The jobs still to do: all with `force`, else those whose last record (`latest`, by source) is not
    a current "ok" one."""
    want = settings.recorded()

    def done(job: Job) -> bool:
        r = latest.get(job.rel)
        return (
            r is not None
            and r.status == "ok"
            and (r.size, r.mtime, r.output) == (job.size, job.mtime, job.out_rel)
            and r.settings == want
            and os.path.isfile(job.output)
        )

    return list(jobs) if force else [j for j in jobs if not done(j)]
