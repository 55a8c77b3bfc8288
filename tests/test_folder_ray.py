"""Folder encodes on Ray (a local instance, 2 CPUs): the same outputs and manifest as on this machine.
Skipped where Ray is not installed (pip install -e ".[ray]")."""

import pytest
from conftest import make_clip
from typer.testing import CliRunner

from vtok.cli.commands import app
from vtok.folder import encode_dataset, read_manifest

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    src = tmp_path_factory.mktemp("ray") / "in"
    (src / "a").mkdir(parents=True)
    make_clip(src / "x.mp4")
    make_clip(src / "a" / "y.mp4", frames=9)
    (src / "a" / "bad.mp4").write_bytes(b"not a video")
    return src


def test_encode_dataset_writes_what_a_folder_encode_writes(local_ray, tree, tmp_path):
    runner = CliRunner()
    r = runner.invoke(app, ["encode", str(tree), "-o", str(tmp_path / "local"), "--device", "cpu"])
    assert r.exit_code == 1, r.output  # bad.mp4
    paths = ray.data.from_items([{"path": str(p)} for p in sorted(tree.rglob("*.mp4"))])
    result = encode_dataset(paths, tmp_path / "ray", root=tree, workers=2, threshold=0.003, device="cpu")
    assert (result.found, result.ok, result.failed) == (3, 2, 1)
    local, on_ray = (read_manifest(tmp_path / d / "manifest.jsonl") for d in ("local", "ray"))
    assert sorted(on_ray) == ["a/bad.mp4", "a/y.mp4", "x.mp4"]

    def same(r):
        return r.status, r.output, r.size, r.mtime, r.frames, r.tokens, r.settings

    assert {k: same(v) for k, v in on_ray.items()} == {k: same(v) for k, v in local.items()}
    assert (tmp_path / "ray" / "a" / "y.vtok").read_bytes() == (tmp_path / "local" / "a" / "y.vtok").read_bytes()

    # the command line uses the running instance; a second run resumes
    r = runner.invoke(app, ["encode", str(tree), "-o", str(tmp_path / "ray"), "--device", "cpu", "--ray", "-j", "2"])
    assert r.exit_code == 1 and "0 encoded, 2 already done, 1 failed" in r.stdout
