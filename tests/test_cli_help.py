"""The small things a new user meets first: help, version, listing models, and fast failures."""

import errno
import json
import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

import vtok
from vtok.cli.commands import app
from vtok.cli.options import errors
from vtok.cli.render import plural

runner = CliRunner()


def test_short_help_and_version():
    assert runner.invoke(app, ["-h"]).exit_code == 0
    r = runner.invoke(app, ["encode", "-h"])
    assert r.exit_code == 0 and "--threshold" in r.stdout
    r = runner.invoke(app, ["--version"])
    assert r.exit_code == 0 and r.stdout.strip() == f"vtok {vtok.__version__}"


@pytest.mark.parametrize("command", ["encode", "decode", "inspect", "trim", "bench", "train"])
def test_help_shows_no_raw_floats_or_python_types_for_options(command):
    text = runner.invoke(app, [command, "--help"]).stdout
    options = text[text.index("Options:") :]
    assert "0.0235" not in text and "<float" not in options and "<int" not in options and "<str>" not in options
    assert "<path>" not in options


def test_models_marks_the_default():
    r = runner.invoke(app, ["models"])
    assert r.exit_code == 0 and "vtok-fsq (default)" in r.stdout and "{" not in r.stdout
    rows = json.loads(runner.invoke(app, ["models", "--json"]).stdout)
    assert [m["name"] for m in rows if m["default"]] == ["vtok-fsq"]


@pytest.mark.parametrize("command", ["encode", "decode", "inspect", "trim"])
def test_a_missing_input_fails_before_torch_is_imported(command, tmp_path):
    probe = (
        "import sys; from vtok.cli import main\n"
        "try:\n    main(sys.argv[1:])\n"
        "except SystemExit as e:\n    print('torch' in sys.modules, e.code)\n"
    )
    extra = {"encode": ["-o", tmp_path / "o.vtok"], "decode": ["-o", tmp_path / "o.mp4"], "inspect": [],
             "trim": ["-o", tmp_path / "o.vtok", "--max-tokens", "8"]}[command]  # fmt: skip
    args = [command, str(tmp_path / "missing"), *map(str, extra)]
    p = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True)
    assert p.stdout.split() == ["False", "1"], p.stdout + p.stderr
    assert p.stderr.strip() in {f"vtok: error: {tmp_path / 'missing'}: no such file{s}" for s in ("", " or folder")}


def test_counts_are_plural_only_when_they_should_be():
    assert (plural(1, "frame"), plural(2, "frame"), plural(0, "block"), plural(1024, "token")) == (
        "1 frame", "2 frames", "0 blocks", "1,024 tokens",
    )  # fmt: skip


def test_train_on_a_too_short_clip_says_what_it_needs(tmp_path):
    from conftest import make_clip

    clip = make_clip(tmp_path / "short.mp4", frames=6, width=64, height=64)
    args = ["train", clip, "-o", tmp_path / "out", "--cache", tmp_path / "cache", "--steps", "1", "--crop", "32"]
    r = runner.invoke(app, [str(a) for a in args])
    assert r.exit_code == 1 and "no source is large enough: a video needs" in r.stderr
    assert "stack" not in r.stderr


def test_progress_in_a_log_prints_a_plain_line_every_ten_seconds(monkeypatch, capsys):
    from vtok.cli import options

    clock = [0.0]
    monkeypatch.setattr(options.time, "monotonic", lambda: clock[0])
    with options.progress("encode x.mp4") as advance:  # pytest's stderr is not a terminal
        for _ in range(25):
            clock[0] += 1.0
            advance(4, 100)
    lines = capsys.readouterr().err.splitlines()
    assert lines == ["encode x.mp4: 40/100 frames, 15 s left", "encode x.mp4: 80/100 frames, 5 s left"]


@pytest.mark.parametrize("device", ["foo", "mps", "xpu", "meta"])
def test_an_unknown_device_is_one_line_before_any_work(device, clip, tmp_path):
    from test_container import write_small

    vt = tmp_path / "a.vtok"
    write_small(vt)
    commands = {
        "encode": ["encode", clip, "-o", tmp_path / "o.vtok"],
        "decode": ["decode", vt, "-o", tmp_path / "o.mp4"],
        "train": ["train", clip, "-o", tmp_path / "run", "--cache", tmp_path / "cache"],
    }
    for args in commands.values():
        r = runner.invoke(app, [str(a) for a in [*args, "--device", device]])
        assert r.exit_code == 2 and r.stderr.count("\n") == 1 and "(see --device)" in r.stderr, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.vtok"]  # no output, run folder or cache


def test_a_full_disk_is_one_line_and_other_os_errors_stay_bugs(capsys):
    with pytest.raises(typer.Exit) as stop, errors():
        raise OSError(errno.ENOSPC, "No space left on device", "/out/x.vtok")
    assert stop.value.exit_code == 1
    assert capsys.readouterr().err == "vtok: error: no space left on the device writing /out/x.vtok\n"
    with pytest.raises(PermissionError), errors():
        raise PermissionError(errno.EACCES, "Permission denied")
