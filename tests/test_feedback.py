"""The feedback pass (ModelConfig.feedback): a second encoder pass that sees the first one's decoded
error. It starts as the plain model, learns, gives the same latent in training and at run time, and
runs through the whole codec. The shipped vtok-fsq has it, so tests/test_determinism.py checks its
latent on any number of threads."""

import numpy as np
import pytest
import torch

from vtok.codec import decode_file, encode_file
from vtok.media.video import read_frames
from vtok.model.tokenizer import ModelConfig, Tokenizer
from vtok.train import TrainResult, export
from vtok.train.checkpoint import adapt

FINE = dict(width=8, latent_width=16, encoder_depth=1, decoder_depth=1, stride=4, levels=4)


def _with_feedback(plain: Tokenizer, config: ModelConfig) -> Tokenizer:
    """A feedback model started from `plain`'s weights, as `vtok train --resume` starts it."""
    model = Tokenizer(config)
    model.load_state_dict(adapt(plain.state_dict(), model, lambda line: None), strict=True)
    return model


def _perturb_feedback(model: Tokenizer, std: float) -> None:
    """Give the feedback's zero-initialised projection weights, as training would."""
    torch.manual_seed(1)
    for p in model.feedback[-1].parameters():
        torch.nn.init.normal_(p, std=std)


QUANTIZERS = [{"kind": "fsq", "levels": [8, 8, 8, 5, 5, 5]}, {"kind": "lfq", "bits": 6}]


@pytest.mark.parametrize("quantizer", QUANTIZERS, ids=["fsq", "lfq"])
def test_resuming_a_plain_model_keeps_its_codes_and_the_feedback_learns(quantizer):
    torch.manual_seed(0)
    plain = Tokenizer(ModelConfig(**FINE, quantizer=quantizer))
    model = _with_feedback(plain, ModelConfig(**FINE, quantizer=quantizer, feedback=True))
    x = torch.rand(2, 3, 4, 32, 48) * 2 - 1
    assert torch.equal(plain.encode(x), model.encode(x))
    y, z, _ = model(x)
    assert torch.equal(y, plain(x)[0])
    (y - x).square().mean().backward()
    assert model.feedback[-1].weight.grad.abs().sum() > 0  # it learns from the first step
    assert model.encoder[0].weight.grad.abs().sum() > 0  # and the encoder still does


@pytest.mark.parametrize("quantizer", QUANTIZERS, ids=["fsq", "lfq"])
def test_training_and_run_time_give_the_same_latent(float32_for, quantizer):
    """`latent` (training) and `exact_latent` (encode) are one function; in float32 they agree to
    rounding, and the feedback changes the latent."""
    float32_for("encoder")
    torch.manual_seed(0)
    plain = Tokenizer(ModelConfig(**FINE, quantizer=quantizer))
    model = _with_feedback(plain, ModelConfig(**FINE, quantizer=quantizer, feedback=True))
    x = torch.rand(2, 3, 4, 32, 48) * 2 - 1
    before = model.exact_latent(x)
    _perturb_feedback(model, 0.1)
    with torch.no_grad():
        trained = model.latent(x)
    exact = model.exact_latent(x)
    assert (exact - before).abs().max() > 0.01
    assert torch.allclose(trained, exact, atol=1e-5)


@pytest.mark.parametrize("bad", [dict(FINE, context=True), dict(FINE, stride=8, levels=3)])
def test_feedback_needs_the_stride_4_layout_without_context(bad):
    with pytest.raises(ValueError, match="feedback needs the stride-4 layout and no context"):
        ModelConfig(**bad | {"feedback": True})


def test_a_feedback_model_encodes_and_decodes_a_video(clip, tmp_path):
    torch.manual_seed(0)
    config = ModelConfig(**FINE, feedback=True)
    model = Tokenizer(config)
    _perturb_feedback(model, 0.1)
    state = {k: v.detach() for k, v in model.state_dict().items()}
    export(TrainResult(steps=0, seconds=0, metrics={}, state=state), name="tiny", config=config,
           out_dir=tmp_path / "w", data=[])  # fmt: skip
    spec = f"{tmp_path / 'w'}#tiny"
    r = encode_file(src=clip, dst=tmp_path / "a.vtok", model=spec, threshold=0.5, device="cpu")
    assert r.tokens < r.full_tokens
    assert decode_file(src=tmp_path / "a.vtok", dst=tmp_path / "a.mp4", model=spec, device="cpu").frames == 22
    assert np.stack(list(read_frames(tmp_path / "a.mp4"))).shape == (22, 138, 250, 3)
