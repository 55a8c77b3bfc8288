"""`vtok bench`: rate-distortion and speed of vtok beside classical codecs (see `runner`)."""

from vtok.bench.analysis import bd_rate, bd_rates, elastic_gain
from vtok.bench.classical import CLASSICAL, Classical
from vtok.bench.report import summary
from vtok.bench.runner import Run, centre_crop, find_clips, run_bench
from vtok.metrics import psnr  # benchmarks/ scripts took it from the bench code, where a copy used to live

__all__ = [
    "run_bench",
    "Run",
    "summary",
    "bd_rates",
    "bd_rate",
    "elastic_gain",
    "CLASSICAL",
    "Classical",
    "find_clips",
    "centre_crop",
    "psnr",
]
