"""The header of a `.vtok` file: what it says about its video and the model that tokenized it.

It is stored as compact JSON (docs/FORMAT.md). Version 3 adds the token layout (stride, levels,
keyframes), and version 4 keeps its header; files of the first layout are still written as version
2, byte for byte. The optional keys (`rotation`, `source_notes`) are written only when they say
something, so files of ordinary sources keep their bytes, and readers that do not know them ignore
them.
"""

import dataclasses
import json
import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from vtok.errors import ContainerError
from vtok.format.layout import FIRST_STRIDE, LAYOUTS, LEVELS, tile_grid, tile_size

__all__ = ["Header", "MAX_SIDE", "MAX_FRAMES", "MAX_BLOCKS_PER_CHUNK"]

MAX_SIDE = 16384
MAX_FRAMES = 1 << 31
MAX_BLOCKS_PER_CHUNK = 4096

# The JSON keys in the order version 2 wrote them: fields of Header and values derived from them.
_V2_KEYS = (
    "model", "model_sha256", "model_config", "quantizer", "codebook_size", "code_dtype", "block_frames", "grid",
    "threshold", "rlt_threshold", "token_order", "width", "height", "frames", "rate", "blocks", "source",
    "source_duration_s",
)  # fmt: skip
_V3_KEYS = ("token_stride", "levels", "keyframe_interval")  # absent from version 2: the first layout
_OPTIONAL_KEYS = ("rotation", "source_notes")  # any version; absent when 0 or empty
ROTATIONS = (0, 90, 180, 270)
MAX_NOTES, MAX_NOTE_CHARS = 16, 400


def code_dtype_name(codebook_size: int) -> str:
    """The narrowest unsigned type that holds every code: 'uint8', 'uint16' or 'uint32'."""
    for name in ("uint8", "uint16", "uint32"):
        if codebook_size - 1 <= np.iinfo(name).max:
            return name
    raise ContainerError(f"codebook of {codebook_size} codes does not fit uint32")


def _token_order(levels: int) -> str:
    t = tile_size(levels)
    return f"levels-{t}x{t}"


@dataclass(frozen=True)
class Header:
    """Everything a `.vtok` file says about its video and the model that tokenized it."""

    model: str
    model_sha256: str
    model_config: dict
    quantizer: dict
    codebook_size: int
    block_frames: int
    width: int
    height: int
    frames: int
    rate: Fraction
    threshold: float = 0.0
    rlt_threshold: float = 0.0
    source: str = ""
    source_duration_s: float = 0.0
    token_stride: int = FIRST_STRIDE  # pixels per token side
    levels: int = LEVELS  # budget levels per tile (vtok.format.layout)
    keyframe_interval: int = 0  # blocks from one keyframe to the next; 0: only block 0 (models without context)
    rotation: int = 0  # degrees clockwise a player turns the frames to show them upright: 0, 90, 180 or 270
    source_notes: tuple[str, ...] = ()  # how the source was changed on the way in, one short sentence each

    @property
    def grid(self) -> tuple[int, int]:
        """Token positions per block: (rows, columns)."""
        return math.ceil(self.height / self.token_stride), math.ceil(self.width / self.token_stride)

    def is_keyframe(self, index: int) -> bool:
        """Whether block `index` continues no runs and, for a model with context, is decoded without it."""
        return index == 0 or (self.keyframe_interval > 0 and index % self.keyframe_interval == 0)

    @property
    def blocks(self) -> int:
        return math.ceil(self.frames / self.block_frames)

    def block_length(self, index: int) -> int:
        """Real frames in block `index`: block_frames, fewer in a short last block."""
        return min(self.block_frames, self.frames - index * self.block_frames)

    @property
    def tiles(self) -> tuple[int, int]:
        """Budget tiles per block: (rows, columns), each T x T token positions (vtok.format.layout)."""
        return tile_grid(*self.grid, self.levels)

    @property
    def code_dtype(self) -> np.dtype:
        return np.dtype(code_dtype_name(self.codebook_size)).newbyteorder("<")

    @property
    def tokens_per_block(self) -> int:
        """The full budget: one token per position."""
        rows, cols = self.grid
        return rows * cols

    @property
    def version(self) -> int:
        """The format version this header needs: 2 for the first layout, 3 for the others (whose
        files are now written as version 4, which changes only how codes are laid out)."""
        return 2 if (self.token_stride, self.levels, self.keyframe_interval) == (FIRST_STRIDE, LEVELS, 0) else 3

    def _derived(self) -> dict:
        """The values the JSON holds beside the fields, so a reader can cross-check them."""
        return {
            "code_dtype": code_dtype_name(self.codebook_size),
            "grid": list(self.grid),
            "token_order": _token_order(self.levels),
            "blocks": self.blocks,
        }

    def to_bytes(self) -> bytes:
        values = dataclasses.asdict(self) | self._derived()
        values |= {
            "rate": [self.rate.numerator, self.rate.denominator],
            "threshold": float(self.threshold),
            "rlt_threshold": float(self.rlt_threshold),
            "source_duration_s": float(self.source_duration_s),
        }
        values["source_notes"] = list(self.source_notes)
        keys = _V2_KEYS + (_V3_KEYS if self.version == 3 else ())
        keys += tuple(k for k in _OPTIONAL_KEYS if values[k])
        return json.dumps({k: values[k] for k in keys}, separators=(",", ":"), ensure_ascii=True).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> "Header":
        try:
            d = json.loads(raw.decode())
            kwargs = {
                f.name: _PARSE[f.type](d[f.name])
                for f in dataclasses.fields(cls)
                if f.name in d or f.name not in _V3_KEYS + _OPTIONAL_KEYS  # version 2 leaves the layout out
            }
            header = cls(**kwargs)
        # ArithmeticError: JSON reads 1e400 as infinity, which int() refuses; RecursionError: deep nesting
        except (ValueError, KeyError, TypeError, IndexError, ArithmeticError, RecursionError) as e:
            raise ContainerError(f"header is malformed ({e.__class__.__name__}: {e})") from None
        header.check()
        derived = header._derived()
        if d.get("grid") != derived["grid"] or d.get("blocks") != derived["blocks"]:
            raise ContainerError("header grid or block count disagrees with its size and frame count")
        if d.get("token_order") != derived["token_order"]:
            raise ContainerError(f"unknown token order {d.get('token_order')!r}")
        if d.get("code_dtype") != derived["code_dtype"]:
            raise ContainerError("header code_dtype disagrees with its codebook size")
        return header

    def check(self) -> None:
        """Raise ContainerError unless every field is within the format's limits."""
        if not (1 <= self.width <= MAX_SIDE and 1 <= self.height <= MAX_SIDE):
            raise ContainerError(f"frame size {self.width}x{self.height} is outside 1..{MAX_SIDE}")
        if not 0 <= self.frames <= MAX_FRAMES:
            raise ContainerError(f"frame count {self.frames} is outside 0..{MAX_FRAMES}")
        if not 1 <= self.block_frames <= 64:
            raise ContainerError(f"block of {self.block_frames} frames is outside 1..64")
        if not 2 <= self.codebook_size <= 1 << 32:
            raise ContainerError(f"codebook size {self.codebook_size} is outside 2..2^32")
        if self.rate <= 0:
            raise ContainerError(f"frame rate {self.rate} is not positive")
        if (self.token_stride, self.levels) not in LAYOUTS:
            raise ContainerError(f"unknown token layout: stride {self.token_stride} with {self.levels} levels")
        if not 0 <= self.keyframe_interval <= MAX_BLOCKS_PER_CHUNK:  # a chunk starts at a keyframe
            raise ContainerError(f"keyframe interval {self.keyframe_interval} is outside 0..{MAX_BLOCKS_PER_CHUNK}")
        if self.rotation not in ROTATIONS:
            raise ContainerError(f"rotation {self.rotation} is not one of {ROTATIONS}")
        if len(self.source_notes) > MAX_NOTES or any(len(n) > MAX_NOTE_CHARS for n in self.source_notes):
            raise ContainerError(f"source notes exceed {MAX_NOTES} notes of {MAX_NOTE_CHARS} characters")


def _rate(value: list) -> Fraction:
    return Fraction(int(value[0]), int(value[1]))


def _notes(value: list) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(n, str) for n in value):
        raise TypeError("source_notes is not a list of strings")
    return tuple(value)


# How each field's JSON value becomes its Python value, by the field's type.
_PARSE = {str: str, dict: dict, int: int, float: float, Fraction: _rate, tuple[str, ...]: _notes}
