"""The codec: encode video to `.vtok`, decode it back, trim its budgets, and inspect what it holds."""

from vtok.codec.decode import DecodeResult, decode_file
from vtok.codec.encode import EncodeResult, encode_file
from vtok.codec.inspect import inspect_file, verify_file
from vtok.codec.trim import TrimResult, trim_file

__all__ = [
    "encode_file",
    "decode_file",
    "trim_file",
    "inspect_file",
    "verify_file",
    "EncodeResult",
    "DecodeResult",
    "TrimResult",
]
