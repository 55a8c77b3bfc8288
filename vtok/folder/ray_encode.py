"""Encode videos on a Ray cluster with Ray Data: the same outputs and manifest as a folder encode.

Encoders run as an actor pool (a class given to `Dataset.map_batches`), so each worker loads the
model once; the driver takes the records as they finish and alone writes the manifest. Every node
must reach the sources and the output folder at the same paths (a shared filesystem) and have vtok
installed. Needs the `ray` extra: pip install "vtok[ray]".
"""

import json
import logging
import os
import socket
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

from vtok.budget.runs import DEFAULT_THRESHOLD as RLT_DEFAULT
from vtok.errors import MediaError, VtokError, Warn
from vtok.extras import require
from vtok.folder.manifest import Record
from vtok.folder.plan import Job, Settings
from vtok.folder.run import FolderProgress, FolderResult, run_jobs
from vtok.folder.worker import FileEncoder
from vtok.model.registry import DEFAULT_MODEL

__all__ = ["encode_dataset", "ray_backend", "RayEncoder"]


def encode_dataset(ds, out_dir: Path, *, root: Path | None = None, model: str = DEFAULT_MODEL, threshold: float = 0.0,
                   rlt_threshold: float = RLT_DEFAULT, refine: int = 0, device: str = "auto", workers: int = 2,
                   cpus_per_worker: float | None = None, force: bool = False, progress: FolderProgress | None = None,
                   warn: Warn | None = None) -> FolderResult:  # fmt: skip
    """Encode the videos a `ray.data.Dataset` names into `out_dir`, as vtok.folder.encode_folder does a folder.

    ds: a dataset with a string column "path", one video per row (e.g. `ray.data.from_items(
      [{"path": p} for p in paths])`). The paths are collected on the driver to plan the run.
    root: the folder whose tree `out_dir` mirrors (`root/x/y.mp4` -> `out_dir/x/y.vtok`); default:
      the folder that holds all the paths.
    workers: encoder actors; each reserves `cpus_per_worker` CPUs (default: the cluster's CPUs //
      workers) and runs that many torch threads, and one GPU when `device` is cuda.
    The other keywords are encode_folder's. Uses the Ray instance this process has, else starts or
    joins one as `ray.init()` does ($RAY_ADDRESS); one it started is shut down at the end.
    """
    require("ray.data")
    paths = [Path(str(row["path"])).absolute() for row in ds.select_columns(["path"]).iter_rows()]
    if not paths:
        raise MediaError("the dataset names no videos")
    root = Path(root) if root is not None else Path(os.path.commonpath([p.parent for p in paths]))
    settings = Settings.check(model=model, threshold=threshold, rlt_threshold=rlt_threshold, device=device,
                              refine=refine, local=False)  # fmt: skip
    backend = ray_backend(workers=workers, cpus_per_worker=cpus_per_worker)
    return run_jobs(paths, root=root, out_dir=out_dir, settings=settings, force=force, backend=backend,
                    progress=progress, warn=warn)  # fmt: skip


class RayEncoder:
    """The actor of the pool: a FileEncoder per Ray worker. Batches of jobs (JSON) in, records (JSON) out."""

    def __init__(self, settings: Settings, threads: int):
        self.encoder = FileEncoder(settings, threads)

    def __call__(self, batch: dict) -> dict:
        records = [self.encoder(Job(**json.loads(str(j)))) for j in batch["job"]]
        return {"record": [r.to_json() for r in records]}


def ray_backend(*, workers: int, address: str | None = None, cpus_per_worker: float | None = None,
                quiet: bool = False):  # fmt: skip
    """A backend for vtok.folder.run_jobs that runs the jobs on Ray: connected (or started) at the first
    job, shut down at the end if it started it. `quiet`: no Ray Data progress bars or info logs (the
    caller shows its own)."""
    ray = require("ray")

    def run(todo: list[Job], settings: Settings) -> Iterator[Record]:
        started = _connect(ray, address, quiet)
        try:
            yield from _records(todo, settings, workers, cpus_per_worker, quiet)
        finally:
            if started:
                ray.shutdown()

    return run


def _connect(ray, address: str | None, quiet: bool) -> bool:
    """Join the cluster at `address` (or $RAY_ADDRESS), else start a local instance; True if this call did it."""
    if ray.is_initialized():
        return False
    _check_reachable(address or os.environ.get("RAY_ADDRESS"))
    try:
        ray.init(address=address, logging_level=logging.WARNING if quiet else logging.INFO)
    except (ConnectionError, RuntimeError, ValueError) as e:
        where = address or os.environ.get("RAY_ADDRESS") or "a local instance"
        raise VtokError(f"cannot start or reach Ray ({where}): {e}") from None
    return True


def _check_reachable(address: str | None, timeout_s: float = 10.0) -> None:
    """Raise a VtokError at once if a `host:port` cluster address does not answer: Ray itself keeps
    retrying for many minutes. Other forms ("auto", "local", "ray://…") are left to Ray."""
    if not address or "://" in address or address in ("auto", "local") or ":" not in address:
        return
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except (OSError, ValueError) as e:
        reason = e.strerror or str(e) if isinstance(e, OSError) else "not a port number"
        raise VtokError(f"cannot reach a Ray cluster at {address} ({reason})", option="ray_address") from None


def _records(todo: list[Job], settings: Settings, workers: int, cpus: float | None, quiet: bool) -> Iterator[Record]:
    import ray
    import ray.data

    if quiet:
        ray.data.DataContext.get_current().enable_progress_bars = False
        logging.getLogger("ray.data").setLevel(logging.ERROR)  # its info lines, and a warning that bars are off
    cpus = cpus or max(1, int(ray.cluster_resources().get("CPU", 1)) // workers)
    items = [{"job": json.dumps(asdict(j))} for j in todo]
    # Blocks are what the pool hands out: enough of them that every actor gets work and a slow file
    # holds up few others; not one per file, whose overhead tells on a million files.
    ds = ray.data.from_items(items, override_num_blocks=min(len(items), 16 * workers))
    ds = ds.map_batches(
        RayEncoder,
        fn_constructor_kwargs={"settings": settings, "threads": max(1, int(cpus))},
        batch_size=1,  # one file per call: records come back as each file ends
        compute=ray.data.ActorPoolStrategy(size=workers),
        num_cpus=cpus,
        num_gpus=1 if settings.device.startswith("cuda") else 0,
    )
    for row in ds.iter_rows():
        yield Record.from_json(str(row["record"]))
