"""The `vtok` command line."""

from vtok.cli.commands import app, main

__all__ = ["app", "main"]
