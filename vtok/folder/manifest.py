"""The manifest of a folder encode: `OUT/manifest.jsonl`, JSON Lines, one record per source file per run
that touched it (docs/dataset.md lists the fields).

Records are only ever appended: a later record for the same source supersedes the earlier ones, so
reading takes the last record per source. Each line is written whole, then flushed and fsynced, so an
interrupted run leaves complete records behind; a torn last line (a crash in mid-write) is ignored on
reading, and the next append starts on a fresh line.
"""

import json
import os
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import IO

__all__ = ["MANIFEST_NAME", "STATUSES", "Record", "read_manifest", "ManifestWriter"]

MANIFEST_NAME = "manifest.jsonl"
STATUSES = ("ok", "failed", "skipped")


@dataclass(frozen=True)
class Record:
    """What one run did with one source file; one line of the manifest, its keys in this order."""

    source: str  # the source, relative to the input folder, with / separators
    size: int  # its size in bytes, and
    mtime: float  # its modification time (seconds since the epoch), both when it was read
    output: str  # the .vtok file, relative to the output folder
    status: str  # "ok", "failed" (see error) or "skipped" (not tried: see error)
    frames: int = 0  # frames encoded (0 unless ok)
    tokens: int = 0  # tokens stored (0 unless ok)
    seconds: float = 0.0  # wall time of this file's encode, model loading excluded
    error: str | None = None  # why it failed or was skipped; None when ok
    warnings: tuple[str, ...] = ()  # what the encoder changed on the way (vtok.errors.Warn), one sentence each
    settings: dict = field(default_factory=dict)  # model, threshold, rlt_threshold it was encoded with

    def to_json(self) -> str:
        """The record as one line of JSON, without the newline."""
        return json.dumps({**asdict(self), "warnings": list(self.warnings)})

    @classmethod
    def from_json(cls, line: str) -> "Record":
        """Parse one line; keys this version does not know are ignored. Raises ValueError if it is not a record."""
        data = json.loads(line)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        known = {f.name for f in fields(cls)}
        try:
            record = cls(**{k: v for k, v in data.items() if k in known})
        except TypeError as e:  # a required key is missing
            raise ValueError(str(e)) from None
        record = replace(record, warnings=tuple(record.warnings))
        if record.status not in STATUSES:
            raise ValueError(f"unknown status {record.status!r}")
        return record


def read_manifest(path: Path) -> dict[str, Record]:
    """The last record for each source in the manifest at `path` (empty if there is none yet).
    Lines that are not whole records (a torn last line) are left out."""
    latest: dict[str, Record] = {}
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return latest
    for line in text.splitlines():
        try:
            record = Record.from_json(line)
        except ValueError:
            continue
        latest[record.source] = record
    return latest


class ManifestWriter:
    """Appends records to a manifest, each line flushed and fsynced before `append` returns.

    Use as a context manager; one writer per output folder at a time (the driver of a run).
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self._file: IO[str] | None = None

    def __enter__(self) -> "ManifestWriter":
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (closed in __exit__)
        if self._file.tell() > 0 and not _ends_with_newline(self.path):
            self._file.write("\n")  # after a torn line, so the next record starts on its own line
        return self

    def append(self, record: Record) -> None:
        """Write `record` as one line and make it durable."""
        assert self._file is not None, "use ManifestWriter as a context manager"
        self._file.write(record.to_json() + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def __exit__(self, *_) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"
