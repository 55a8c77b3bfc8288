"""`vtok encode DIR -o OUTDIR`: the mirrored tree, the manifest, resuming, failures, bad inputs, the pool."""

import json
import os
import sys

import pytest
from conftest import cut, make_clip
from typer.testing import CliRunner

import vtok
from vtok.cli.commands import app
from vtok.errors import UsageError
from vtok.folder.manifest import ManifestWriter, Record, read_manifest
from vtok.folder.plan import Settings

runner = CliRunner()
KEYS = ["source", "size", "mtime", "output", "status", "frames", "tokens", "seconds", "error", "warnings", "settings"]


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def encode(src, out, *more):
    return run("encode", src, "-o", out, "--device", "cpu", *more)


def lines(out):
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


@pytest.fixture
def tree(tmp_path):
    """IN/x.mp4 (12 frames), IN/a/y.mp4 (9), IN/a/b/z.mkv (5), and a text file that is no video."""
    src = tmp_path / "in"
    (src / "a" / "b").mkdir(parents=True)
    make_clip(src / "x.mp4")
    make_clip(src / "a" / "y.mp4", frames=9)
    make_clip(src / "a" / "b" / "z.mkv", frames=5, fmt="matroska")
    (src / "notes.txt").write_text("not a video")
    return src


def test_folder_mirrors_the_tree_and_records_every_file(tree, tmp_path):
    out = tmp_path / "out"
    r = encode(tree, out, "--threshold", "0.01", "--no-rlt", "--model", "vtok-fsq")
    assert r.exit_code == 0, r.output
    assert "3 files: 3 encoded, 0 already done, 0 failed" in r.stdout
    records = {d["source"]: d for d in lines(out)}
    assert sorted(records) == ["a/b/z.mkv", "a/y.mp4", "x.mp4"]
    for source, frames in [("x.mp4", 12), ("a/y.mp4", 9), ("a/b/z.mkv", 5)]:
        d = records[source]
        assert list(d) == KEYS and d["status"] == "ok" and d["error"] is None and d["frames"] == frames
        assert d["output"] == source.rsplit(".", 1)[0] + ".vtok" and d["size"] == (tree / source).stat().st_size
        assert d["mtime"] == (tree / source).stat().st_mtime and d["seconds"] > 0 and d["tokens"] > 0
        assert d["settings"]["threshold"] == 0.01 and d["settings"]["rlt_threshold"] == 0.0
        with vtok.open(out / d["output"]) as f:  # the options reached the encoder
            assert (f.header.frames, f.header.threshold, f.header.rlt_threshold) == (frames, 0.01, 0.0)
            assert f.header.model == d["settings"]["model"] == "vtok-fsq"


def test_a_second_run_resumes_redoes_what_changed_and_force_redoes_all(tree, tmp_path):
    out = tmp_path / "out"
    assert encode(tree, out).exit_code == 0
    r = encode(tree, out)
    assert r.exit_code == 0 and "0 encoded, 3 already done" in r.stdout and len(lines(out)) == 3
    make_clip(tree / "a" / "y.mp4", frames=14)  # the source changed
    (out / "x.vtok").unlink()  # an output went missing
    r = encode(tree, out)
    assert "2 encoded, 1 already done" in r.stdout
    assert read_manifest(out / "manifest.jsonl")["a/y.mp4"].frames == 14 and (out / "x.vtok").exists()
    assert "3 encoded, 0 already done" in encode(tree, out, "--threshold", "0.01").stdout  # other settings
    assert "3 encoded, 0 already done" in encode(tree, out, "--threshold", "0.01", "--force").stdout
    assert len(lines(out)) == 11


def test_a_file_that_fails_is_recorded_and_the_others_go_on(tree, tmp_path):
    out = tmp_path / "out"
    assert encode(tree, out).exit_code == 0
    (tree / "a" / "y.mp4").write_bytes(cut(tree / "a" / "y.mp4", 0.05).read_bytes())  # now unreadable
    (tree / "a" / "cut-y.mp4").unlink()
    (tree / "bad.avi").write_bytes(b"RIFF, but nothing else")
    r = encode(tree, out)
    assert r.exit_code == 1
    assert "4 files: 0 encoded, 2 already done, 2 failed" in r.stdout
    err = r.stderr.splitlines()
    assert err[-1] == f"vtok: error: 2 of 4 files failed; see {out / 'manifest.jsonl'}"
    assert any(line.startswith("vtok: failed: bad.avi: ") for line in err)
    latest = read_manifest(out / "manifest.jsonl")
    assert latest["a/y.mp4"].status == latest["bad.avi"].status == "failed" and latest["bad.avi"].error
    assert not (out / "a" / "y.vtok").exists()  # the output of the older source is gone with it
    assert not (out / "bad.vtok").exists() and not list(out.rglob(".*part*"))


def test_an_output_folder_inside_the_input_is_refused_in_one_line(tree):
    r = encode(tree, tree / "tokens")
    assert r.exit_code == 2 and len(r.stderr.splitlines()) == 1
    assert "inside the input folder" in r.stderr and "(see --output)" in r.stderr
    assert not (tree / "tokens").exists()


@pytest.mark.parametrize("name", ["threshold", "rlt_threshold"])
def test_the_settings_refuse_a_negative_threshold_naming_its_option(name):
    # the CLI refuses these first; Ray's and the library's callers reach Settings.check directly
    values = {"threshold": 0.003, "rlt_threshold": 0.01, name: -0.5}
    with pytest.raises(UsageError, match="must be >= 0, not -0.5") as err:
        Settings.check(model="vtok-fsq", device="cpu", **values)
    assert err.value.option == name


def test_symlink_loops_are_one_line_each_and_linked_folders_are_walked_once(tree, tmp_path):
    os.symlink("..", tree / "a" / "up")  # a loop back to IN
    os.symlink("self", tree / "self")  # a link to itself: ELOOP
    os.symlink(tree / "a" / "b", tree / "b-again")  # a second way to a/b
    out = tmp_path / "out"
    r = encode(tree, out)
    assert r.exit_code == 0, r.output
    warnings = [line for line in r.stderr.splitlines() if line.startswith("vtok: warning:")]
    assert len(warnings) == 3 and any("symlink loop" in w for w in warnings), warnings
    assert sorted(read_manifest(out / "manifest.jsonl")) == ["a/b/z.mkv", "a/y.mp4", "x.mp4"]


def test_glob_takes_the_files_that_match(tree, tmp_path):
    r = encode(tree, tmp_path / "out", "--glob", "a/*.mp4")
    assert r.exit_code == 0 and sorted(read_manifest(tmp_path / "out" / "manifest.jsonl")) == ["a/y.mp4"]
    r = encode(tree, tmp_path / "none", "--glob", "*.webm")
    assert r.exit_code == 1 and "no videos found matching '*.webm'" in r.stderr


def test_two_jobs_give_what_one_gives(tree, tmp_path):
    assert encode(tree, tmp_path / "one").exit_code == 0
    r = encode(tree, tmp_path / "two", "--jobs", "2")
    assert r.exit_code == 0, r.output
    one, two = (read_manifest(tmp_path / d / "manifest.jsonl") for d in ("one", "two"))
    assert {k: (v.frames, v.tokens) for k, v in one.items()} == {k: (v.frames, v.tokens) for k, v in two.items()}


def test_ctrl_c_leaves_whole_records_and_no_partial_output(tree, tmp_path, monkeypatch):
    import vtok.codec.encode as enc

    real, calls = enc.encode_file, []

    def interrupted(**kw):  # the second file is interrupted after its first batch of blocks
        calls.append(kw["src"])
        if len(calls) == 2:
            kw["progress"] = lambda n, total: (_ for _ in ()).throw(KeyboardInterrupt)
        return real(**kw)

    monkeypatch.setattr(enc, "encode_file", interrupted)
    out = tmp_path / "out"
    r = encode(tree, out)
    assert r.exit_code == 130 and "run again to resume" in r.stderr
    assert [d["status"] for d in lines(out)] == ["ok"]
    assert sorted(p.name for p in out.rglob("*") if p.is_file()) == ["manifest.jsonl", "z.vtok"]
    monkeypatch.setattr(enc, "encode_file", real)
    assert "2 encoded, 1 already done" in encode(tree, out).stdout


def test_the_manifest_keeps_the_last_record_per_source_and_skips_a_torn_line(tmp_path):
    path = tmp_path / "manifest.jsonl"
    with ManifestWriter(path) as w:
        w.append(Record("a.mp4", 1, 1.5, "a.vtok", "failed", error="boom"))
        w.append(Record("b.mp4", 2, 2.5, "b.vtok", "ok", frames=3, tokens=4))
        w.append(Record("a.mp4", 1, 1.5, "a.vtok", "ok", frames=5, warnings=("w",), settings={"model": "m"}))
    with open(path, "a") as f:
        f.write('{"source": "c.mp4", "size"')  # a crash in mid-line
    latest = read_manifest(path)
    assert sorted(latest) == ["a.mp4", "b.mp4"] and latest["a.mp4"].frames == 5 and latest["a.mp4"].warnings == ("w",)
    with ManifestWriter(path) as w:
        w.append(Record("c.mp4", 1, 1.0, "c.vtok", "ok"))
    assert sorted(read_manifest(path)) == ["a.mp4", "b.mp4", "c.mp4"]  # it starts on a fresh line
    assert read_manifest(tmp_path / "none.jsonl") == {}


def test_folder_options_with_a_file_input_are_usage_errors(clip, tmp_path):
    r = encode(clip, tmp_path / "x.vtok", "--jobs", "2")
    assert r.exit_code == 2 and "for a folder input (see --jobs)" in r.stderr


def test_ray_missing_names_the_extra(tree, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    r = encode(tree, tmp_path / "out", "--ray")
    assert r.exit_code == 1 and 'pip install "vtok[ray]"' in r.stderr


def test_an_unreachable_ray_address_fails_at_once_not_after_ray_retries():
    import socket
    import time

    from vtok.errors import VtokError
    from vtok.folder.ray_encode import _check_reachable

    with socket.socket() as s:  # a port that nothing listens on: bound, never listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        start = time.monotonic()
        with pytest.raises(VtokError, match=f"cannot reach a Ray cluster at 127.0.0.1:{port}") as e:
            _check_reachable(f"127.0.0.1:{port}")
    assert time.monotonic() - start < 5 and e.value.option == "ray_address"
    _check_reachable("auto")  # forms Ray resolves itself are left to it
    _check_reachable("ray://head:10001")
