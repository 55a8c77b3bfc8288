"""The results of `vtok bench`: DIR/results.json and results.csv, written atomically and read back,
and the summary table (one row per codec and setting)."""

import csv
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from statistics import fmean, median

from vtok.files import atomic_path, write_text

__all__ = ["Run", "write_results", "read_results", "summary"]

RESULTS_JSON = "results.json"
RESULTS_CSV = "results.csv"


@dataclass
class Run:
    """One measurement: one clip through one codec at one setting. Its fields are the columns of
    results.json and results.csv."""

    clip: str
    codec: str  # a vtok model name or a classical codec name
    setting: str  # "T=0.003" (elastic), "full", "fixed=25%" (a fixed share of the full budget), or "crf=28"
    bits_per_pixel: float
    psnr_db: float
    ssim: float
    tokens_per_frame: float | None
    encode_fps: float
    decode_fps: float

    @property
    def key(self) -> str:
        return f"{self.clip}|{self.codec}|{self.setting}"

    @property
    def is_elastic(self) -> bool:
        """vtok at an elastic threshold ("T=...")."""
        return self.setting.startswith("T=")

    @property
    def is_fixed_share(self) -> bool:
        """vtok trimmed to a fixed share of the full budget ("fixed=...")."""
        return self.setting.startswith("fixed=")

    @property
    def is_full_budget(self) -> bool:
        """vtok at the full budget in every block."""
        return self.setting == "full"


def write_results(runs: list[Run], out_dir: Path) -> None:
    """Write every run, sorted by key, to out_dir/results.json and results.csv, each atomically so
    that an interrupted bench leaves the previous results whole (it resumes from them)."""
    rows = [asdict(r) for r in sorted(runs, key=lambda r: r.key)]
    write_text(out_dir / RESULTS_JSON, json.dumps({"runs": rows}, indent=1) + "\n")
    with atomic_path(out_dir / RESULTS_CSV) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def read_results(out_dir: Path) -> list[Run]:
    """The runs in out_dir/results.json; [] when there is no such file yet."""
    path = out_dir / RESULTS_JSON
    return [Run(**row) for row in json.loads(path.read_text())["runs"]] if path.exists() else []


def summary(runs: list[Run]) -> list[dict]:
    """One row per (codec, setting), sorted by them: means over clips of bits_per_pixel, psnr_db,
    ssim and tokens_per_frame (None for classical codecs), and medians of encode_fps and decode_fps."""
    groups: dict[tuple[str, str], list[Run]] = {}
    for r in runs:
        groups.setdefault((r.codec, r.setting), []).append(r)
    rows = []
    for (codec, setting), rs in sorted(groups.items()):
        tokens = [r.tokens_per_frame for r in rs if r.tokens_per_frame is not None]
        rows.append(
            {
                "codec": codec,
                "setting": setting,
                "bits_per_pixel": fmean(r.bits_per_pixel for r in rs),
                "psnr_db": fmean(r.psnr_db for r in rs),
                "ssim": fmean(r.ssim for r in rs),
                "tokens_per_frame": fmean(tokens) if tokens else None,
                "encode_fps": median(r.encode_fps for r in rs),
                "decode_fps": median(r.decode_fps for r in rs),
            }
        )
    return rows
