"""The whole codec with a stride-4 model that has temporal context: keyframes, budgets, trim, decode."""

import numpy as np
import pytest
import torch

from vtok.codec import decode_file, encode_file, trim_file
from vtok.format import VtokReader
from vtok.media.video import read_frames
from vtok.model.architectures import ModelConfig
from vtok.model.tokenizer import Tokenizer
from vtok.train import TrainResult, export

CONFIG = ModelConfig(width=8, latent_width=16, encoder_depth=1, decoder_depth=1, stride=4, levels=4, context=True)


@pytest.fixture
def tiny_model(tmp_path) -> str:
    torch.manual_seed(0)
    state = {k: v.detach() for k, v in Tokenizer(CONFIG).state_dict().items()}
    result = TrainResult(steps=0, seconds=0, metrics={}, state=state)
    export(result, name="tiny", config=CONFIG, out_dir=tmp_path / "w", data=[])
    return f"{tmp_path / 'w'}#tiny"


def test_context_model_encodes_decodes_and_trims(clip, tmp_path, tiny_model, monkeypatch):
    monkeypatch.setattr("vtok.codec.encode.KEYFRAME_INTERVAL", 2)
    out = tmp_path / "a.vtok"
    r = encode_file(src=clip, dst=out, model=tiny_model, threshold=0.5, device="cpu")
    with VtokReader(out) as reader:
        h = reader.header
        blocks = list(reader.blocks())
    assert (h.token_stride, h.levels, h.keyframe_interval) == (4, 4, 2)
    assert h.grid == (35, 63) and r.blocks == len(blocks) == 6
    assert all(not b.run_mask.any() for b in blocks if h.is_keyframe(b.index))
    assert r.tokens < r.full_tokens  # a loose threshold lets blocks drop levels
    back = tmp_path / "a.mp4"
    assert decode_file(src=out, dst=back, model=tiny_model, device="cpu").frames == 22
    frames = np.stack(list(read_frames(back)))
    assert frames.shape == (22, 138, 250, 3)
    trimmed = tmp_path / "t.vtok"
    t = trim_file(src=out, dst=trimmed, max_tokens_per_frame=100)
    assert t.tokens_after < t.tokens_before
    assert decode_file(src=trimmed, dst=tmp_path / "t.mp4", model=tiny_model, device="cpu").frames == 22


def test_context_decoding_uses_the_previous_block(clip, tmp_path, tiny_model):
    """Decoding block 1 alone (as if it were a keyframe) differs from decoding it after block 0."""
    from vtok.model.registry import load_model, resolve

    out = tmp_path / "a.vtok"
    encode_file(src=clip, dst=out, model=tiny_model, device="cpu", rlt_threshold=0)
    net = load_model(resolve(tiny_model))
    with VtokReader(out) as reader:
        s0, s1 = list(reader.states())[:2]
    i0, i1 = (torch.from_numpy(s.indices)[None] for s in (s0, s1))
    y0 = net.decode(i0)
    assert not torch.equal(net.decode(i1, None, y0[:, :, -1]), net.decode(i1))


def test_a_file_made_by_other_weights_is_refused_with_one_clear_line(clip, tmp_path, tiny_model):
    from typer.testing import CliRunner

    from vtok.cli.commands import app

    out = tmp_path / "a.vtok"
    encode_file(src=clip, dst=out, model=tiny_model, device="cpu")
    torch.manual_seed(1)  # the same architecture and name, other weights: like the models shipped before
    state = {k: v.detach() for k, v in Tokenizer(CONFIG).state_dict().items()}
    export(TrainResult(0, 0, {}, state), name="tiny", config=CONFIG, out_dir=tmp_path / "other", data=[])
    r = CliRunner().invoke(
        app, ["decode", str(out), "-o", str(tmp_path / "a.mp4"), "--model", f"{tmp_path / 'other'}#tiny"]
    )
    assert r.exit_code == 1 and "re-encode" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "a.mp4").exists()
