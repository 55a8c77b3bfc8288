"""Scalar quantizers that turn latents into integer token indices, and back."""

from vtok.quantize.fsq import FSQ
from vtok.quantize.lfq import LFQ

__all__ = ["FSQ", "LFQ", "make_quantizer"]


def make_quantizer(spec: dict) -> "FSQ | LFQ":
    """Build a quantizer from its header spec: {"kind": "fsq", "levels": [...]} or {"kind": "lfq", "bits": n}."""
    if spec["kind"] == "fsq":
        return FSQ(tuple(spec["levels"]))
    if spec["kind"] == "lfq":
        return LFQ(int(spec["bits"]))
    raise ValueError(f"unknown quantizer kind {spec['kind']!r}")
