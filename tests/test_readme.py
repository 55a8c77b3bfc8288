"""The README's Python example runs as written, against a file the CLI just made."""

import re
from pathlib import Path

from conftest import default_grid
from typer.testing import CliRunner

from vtok.cli.commands import app

README = Path(__file__).parent.parent / "README.md"


def test_readme_python_example_runs(clip, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert CliRunner().invoke(app, ["encode", str(clip), "-o", "dog.vtok", "--device", "cpu"]).exit_code == 0
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert blocks, "README has no python example"
    for code in blocks:
        code = code.replace("        ...\n", "        seen.append(codes)\n")
        scope = {"seen": []}
        exec(compile(code, "README.md", "exec"), scope)
        assert len(scope["seen"]) == 6 and scope["seen"][0].shape == default_grid(138, 250)
        assert scope["h"].frames == 22
