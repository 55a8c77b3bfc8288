"""Data-parallel training on the CPU: `workers` processes, one thread each by default, average their
gradients every step over torch.distributed (gloo), so that they train one model together.

Why processes and not threads: on the 2-core machines this was built on, a second thread in one
training process adds almost nothing, while a second process trains as many windows again
(`benchmarks/train_workers.py`). Rank 0 is the `vtok train` process: it alone logs, keeps the
checkpoint and exports. Ranks 1 and up are `python -m vtok.train.worker`, started here; each draws
its own windows and keep masks (seed + rank) and applies the same averaged step, so the copies of
the model stay identical, which `Group.check_in_sync` verifies at every checkpoint.
"""

import contextlib
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist

from vtok.errors import VtokError
from vtok.train.config import TrainConfig

__all__ = ["Group", "worker_processes", "config_to_json", "config_from_json", "threads_per_worker"]

TIMEOUT = timedelta(minutes=10)  # a rank waits this long for the others (rank 0 logs and checkpoints meanwhile)
_PATH_FIELDS = ("out_dir", "save_windows", "cache", "resume")


class Group:
    """This process's place among `world` processes that train one model: rank 0 leads."""

    def __init__(self, rank: int, world: int, store: Path):
        self.rank, self.world = rank, world
        dist.init_process_group(
            "gloo", store=dist.FileStore(str(store), world), rank=rank, world_size=world, timeout=TIMEOUT
        )

    @property
    def leads(self) -> bool:
        return self.rank == 0

    def same_start(self, model: torch.nn.Module) -> None:
        """Give every rank rank 0's weights and buffers (they start alike anyway: same seed, same file)."""
        for t in [*model.parameters(), *model.buffers()]:
            dist.broadcast(t.data, 0)

    def average_gradients(self, model: torch.nn.Module) -> None:
        """Replace each parameter's gradient by its mean over the ranks, in one all-reduce."""
        params = [p for p in model.parameters() if p.grad is not None]
        flat = torch.cat([p.grad.reshape(-1).float() for p in params])
        dist.all_reduce(flat)
        flat /= self.world
        at = 0
        for p in params:
            n = p.grad.numel()
            p.grad.copy_(flat[at : at + n].view_as(p.grad))
            at += n

    def agree(self, value: float) -> float:
        """Rank 0's `value` on every rank: the place in the schedule, so that all stop at one step."""
        t = torch.tensor([value], dtype=torch.float64)
        dist.broadcast(t, 0)
        return float(t.item())

    def check_in_sync(self, model: torch.nn.Module) -> None:
        """Raise a VtokError if any rank's weights differ from rank 0's (their sums, in float64)."""
        total = torch.stack([p.detach().double().sum() for p in model.parameters()]).sum().reshape(1)
        sums = [torch.zeros(1, dtype=torch.float64) for _ in range(self.world)]
        dist.all_gather(sums, total)
        if any(not torch.equal(s, sums[0]) for s in sums):
            raise VtokError(f"the training workers' weights drifted apart: {[s.item() for s in sums]}")

    def close(self) -> None:
        dist.destroy_process_group()


def threads_per_worker(workers: int) -> int:
    """Torch threads for each of `workers` processes: the threads torch would use, shared out."""
    return max(1, torch.get_num_threads() // workers)


def config_to_json(config: TrainConfig) -> str:
    """`config` as JSON (paths as strings), for a worker's command line."""
    fields = dataclasses.asdict(config)
    return json.dumps({k: str(v) if k in _PATH_FIELDS and v is not None else v for k, v in fields.items()})


def config_from_json(text: str) -> TrainConfig:
    """The TrainConfig that `config_to_json` wrote."""
    fields = json.loads(text)
    return TrainConfig(**{k: Path(v) if k in _PATH_FIELDS and v is not None else v for k, v in fields.items()})


@contextlib.contextmanager
def worker_processes(sources: list[Path], config: TrainConfig) -> Iterator[Group]:
    """Start ranks 1 to `config.workers - 1` and yield rank 0's Group, for this process.

    On leaving, wait for the workers, which stop at the step rank 0 stops at. If this process fails
    or is interrupted, stop them; if that failure came from a worker's (whose own message is already
    on stderr), raise a VtokError naming it instead.
    """
    threads = threads_per_worker(config.workers)
    torch.set_num_threads(threads)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    with tempfile.TemporaryDirectory(prefix="vtok-train-") as tmp:
        store = Path(tmp) / "store"
        command = [sys.executable, "-m", "vtok.train.worker", str(store), config_to_json(config)]
        procs = [
            subprocess.Popen([*command, str(rank), *map(str, sources)], env=env, stdout=subprocess.DEVNULL)
            for rank in range(1, config.workers)
        ]
        try:
            group = Group(0, config.workers, store)
        except BaseException:
            _stop(procs)
            raise
        try:
            yield group
        except Exception:
            failed = _failed_workers(procs)  # before closing the group, which ends the healthy ones too
            _stop(procs)
            if failed:
                raise VtokError(f"training worker {failed[0]} failed (its message is above)") from None
            raise
        except BaseException:  # Ctrl-C: the workers got it too
            _stop(procs)
            raise
        finally:
            group.close()
        failed = [rank for rank, p in enumerate(procs, 1) if p.wait() != 0]
        if failed:
            raise VtokError(f"training worker {failed[0]} failed (its message is above)")


def _failed_workers(procs: list[subprocess.Popen], grace: float = 5.0) -> list[int]:
    """Ranks of the workers that exited with an error within `grace` seconds: a worker that fails
    drops out of the group first (rank 0's error) and exits just after, saying why."""
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and all(p.poll() in (None, 0) for p in procs):
        time.sleep(0.05)
    return [rank for rank, p in enumerate(procs, 1) if p.poll() not in (None, 0)]


def _stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        p.wait()
