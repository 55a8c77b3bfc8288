"""`vtok bench`: rate-distortion and speed of vtok beside classical codecs (see `runner`)."""

from vtok.bench.analysis import bd_rate, bd_rates, elastic_gain
from vtok.bench.classical import CLASSICAL, Classical
from vtok.bench.report import summary
from vtok.bench.runner import Run, find_clips, run_bench

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
]
