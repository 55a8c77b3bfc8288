"""Optional dependencies: imported where used, with a clear error naming the extra that installs them."""

import importlib
from types import ModuleType

from vtok.errors import VtokError

__all__ = ["require"]

_EXTRA = {"matplotlib": "plot", "huggingface_hub": "hub", "cupy": "gpu", "ray": "ray"}


def require(module: str) -> ModuleType:
    """Import `module`, or raise a VtokError that says which `pip install "vtok[EXTRA]"` provides it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        top = module.split(".")[0]
        raise VtokError(f'this needs {top}, which is not installed: pip install "vtok[{_EXTRA[top]}]"') from None
