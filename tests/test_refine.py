"""`--refine`: latents optimised against the decoder decode closer to the source, at every level."""

import numpy as np
import pytest
import torch
from conftest import make_clip
from typer.testing import CliRunner

import vtok
from vtok.cli.commands import app
from vtok.codec import decode_file, encode_file
from vtok.errors import UsageError
from vtok.folder.manifest import read_manifest
from vtok.format.layout import position_levels
from vtok.model.architectures import ModelConfig
from vtok.model.refine import check_refine, refine_latent, refined_encode
from vtok.model.tokenizer import Tokenizer
from vtok.train import TrainResult, export


def _tiny() -> Tokenizer:
    torch.manual_seed(0)
    cfg = ModelConfig(width=16, latent_width=32, encoder_depth=1, decoder_depth=1, stride=4, levels=4)
    return Tokenizer(cfg).eval()


def _errors(tok: Tokenizer, x: torch.Tensor, indices: torch.Tensor) -> list[float]:
    """MSE of the decoded block at each budget level, the full budget first."""
    at = torch.from_numpy(position_levels(*indices.shape[1:], 4).astype("int64"))
    return [(tok.decode(indices, (at < n)[None]) - x).square().mean().item() for n in (4, 3, 2, 1)]


def test_refined_codes_decode_closer_at_every_level_and_leave_the_weights_alone():
    tok = _tiny()
    before = {k: v.clone() for k, v in tok.state_dict().items()}
    x = torch.linspace(-0.8, 0.8, 64).view(1, 1, 1, 1, 64).expand(1, 3, 4, 64, 64).clone()
    x[:, 1] = x[:, 1].transpose(-1, -2).clone()  # smooth, with structure in both directions
    with torch.inference_mode():  # as encode_file runs it
        plain, refined = tok.encode(x), refined_encode(tok, x, 20)
    assert torch.equal(refined_encode(tok, x, 0), plain)
    assert not torch.equal(refined, plain)
    assert all(r < p for r, p in zip(_errors(tok, x, refined), _errors(tok, x, plain), strict=True))
    assert all(torch.equal(v, before[k]) for k, v in tok.state_dict().items())
    assert all(p.grad is None for p in tok.parameters())


def test_zero_steps_return_the_latent_itself():
    tok = _tiny()
    z = torch.randn(1, tok.quantizer.dim, 4, 4)
    assert refine_latent(tok, torch.zeros(1, 3, 4, 16, 16), z, 0) is z


@pytest.mark.parametrize("steps", [-1, 1.5, True, "3"])
def test_a_bad_step_count_is_refused(steps):
    with pytest.raises(UsageError, match="refine must be a whole number of steps >= 0"):
        check_refine(steps)


def _codes(path) -> list:
    with vtok.open(path) as f:
        return [b.codes for b in f.blocks()]


def test_a_refined_file_holds_other_codes_and_decodes(clip, tmp_path):
    plain, refined = tmp_path / "p.vtok", tmp_path / "r.vtok"
    encode_file(src=clip, dst=plain, threshold=0.003)
    r = encode_file(src=clip, dst=refined, threshold=0.003, refine=4)
    assert r.frames == 22 and decode_file(src=refined, dst=tmp_path / "r.mp4").frames == 22
    a, b = _codes(plain), _codes(refined)
    assert len(a) == len(b) and any(not np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_a_folder_encode_refines_records_it_and_resumes_by_it(clip, tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    make_clip(src / "a.mp4", frames=4, width=32, height=32)
    run = lambda *more: CliRunner().invoke(app, ["encode", str(src), "-o", str(out), *more])  # noqa: E731
    assert run("--refine", "1").exit_code == 0
    assert read_manifest(out / "manifest.jsonl")["a.mp4"].settings["refine"] == 1
    assert "0 encoded, 1 already done" in run("--refine", "1").stdout
    assert "1 encoded, 0 already done" in run().stdout  # other settings
    assert "refine" not in read_manifest(out / "manifest.jsonl")["a.mp4"].settings  # as before --refine


def test_a_context_model_is_refused_and_leaves_no_file(clip, tmp_path):
    ctx = ModelConfig(width=8, latent_width=16, encoder_depth=1, decoder_depth=1, stride=4, levels=4, context=True)
    state = {k: v.detach() for k, v in Tokenizer(ctx).state_dict().items()}
    result = TrainResult(steps=0, seconds=0, metrics={}, state=state)
    export(result, name="c", config=ctx, out_dir=tmp_path / "w", data=[])
    with pytest.raises(UsageError, match="refine is for models without context"):
        encode_file(src=clip, dst=tmp_path / "c.vtok", model=f"{tmp_path / 'w'}#c", refine=2, device="cpu")
    assert not (tmp_path / "c.vtok").exists()


def test_the_cli_refuses_a_negative_step_count(clip, tmp_path):
    r = CliRunner().invoke(app, ["encode", str(clip), "-o", str(tmp_path / "x.vtok"), "--refine", "-1"])
    assert r.exit_code == 2 and "--refine" in r.output and not (tmp_path / "x.vtok").exists()


@pytest.mark.gpu
def test_refinement_runs_on_cuda_and_decodes_closer():
    tok = _tiny().cuda()
    x = torch.linspace(-0.8, 0.8, 64, device="cuda").view(1, 1, 1, 1, 64).expand(1, 3, 4, 64, 64).clone()
    with torch.inference_mode():
        plain, refined = tok.encode(x), refined_encode(tok, x, 20)
    full = [(tok.decode(i) - x).square().mean().item() for i in (plain, refined)]
    assert refined.device.type == "cuda" and full[1] < full[0]
