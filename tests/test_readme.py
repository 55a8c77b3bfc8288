"""The README's Python examples run as written, against a file the CLI just made."""

import re
from pathlib import Path

from conftest import default_grid
from typer.testing import CliRunner

from vtok.cli.commands import app

README = Path(__file__).parent.parent / "README.md"


def test_readme_python_examples_run(clip, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert CliRunner().invoke(app, ["encode", str(clip), "-o", "dog.vtok", "--device", "cpu"]).exit_code == 0
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert len(blocks) == 3, "README's python examples: sequential read, random access, loader"
    grid = default_grid(138, 250)

    states, window, loader = (_run(code) for code in blocks)
    assert len(states["seen"]) == 6 and states["seen"][0].shape == grid
    assert states["h"].frames == 22
    assert window["w"].first_block == 2 and window["codes"].shape == (2, *grid)
    assert window["lengths"].sum() == window["keep"].sum() == len(window["tokens"])
    assert loader["tokens"].shape[0] == 2 and loader["keep"].shape == (2, 2, *grid)  # 22 frames: 2 windows of 8


def _run(code: str) -> dict:
    """Run one README example; an elided loop body (`...`) collects `codes` into `seen`."""
    code = code.replace("        ...\n", "        seen.append(codes)\n")
    scope = {"seen": []}
    exec(compile(code, "README.md", "exec"), scope)
    return scope
