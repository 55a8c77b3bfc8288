"""The feedback pass (ModelConfig.feedback): a second encoder pass that sees the first one's decoded
error. It starts as the plain model, learns, gives the same latent in training and at run time, and
runs through the whole codec. The shipped vtok-fsq has it, so tests/test_determinism.py checks its
latent on any number of threads."""

import numpy as np
import pytest
import torch

from vtok.codec import decode_file, encode_file
from vtok.media.video import read_frames
from vtok.model.architectures import ModelConfig
from vtok.model.tokenizer import Tokenizer, _fold
from vtok.train import TrainResult, export
from vtok.train.checkpoint import adapt

FINE = dict(width=8, latent_width=16, encoder_depth=1, decoder_depth=1, stride=4, levels=4)
STEM = 3 * 4 * 16  # channels of one folded block (_fold): RGB x 4 frames x a 4x4 patch


def _with_feedback(plain: Tokenizer, config: ModelConfig) -> Tokenizer:
    """A feedback model started from `plain`'s weights, as `vtok train --resume` starts it."""
    model = Tokenizer(config)
    model.load_state_dict(adapt(plain.state_dict(), model, lambda line: None), strict=True)
    return model


def _perturb_feedback(model: Tokenizer, std: float) -> None:
    """Give every feedback pass's zero-initialised projection weights, as training would."""
    torch.manual_seed(1)
    for net in (model.feedback, *model.later_feedback):
        for p in net[-1].parameters():
            torch.nn.init.normal_(p, std=std)


def _loss_if_unchanged(old: Tokenizer, new: Tokenizer) -> torch.Tensor:
    """Check that `new`, resumed from `old`, codes and decodes a random block as `old` does; returns
    the reconstruction loss of `new`, for a backward pass."""
    x = torch.rand(2, 3, 4, 32, 48) * 2 - 1
    assert torch.equal(old.encode(x), new.encode(x))
    y = new(x)[0]
    assert torch.equal(y, old(x)[0])
    return (y - x).square().mean()


QUANTIZERS = [{"kind": "fsq", "levels": [8, 8, 8, 5, 5, 5]}, {"kind": "lfq", "bits": 6}]


@pytest.mark.parametrize("quantizer", QUANTIZERS, ids=["fsq", "lfq"])
def test_resuming_a_plain_model_keeps_its_codes_and_the_feedback_learns(quantizer):
    torch.manual_seed(0)
    plain = Tokenizer(ModelConfig(**FINE, quantizer=quantizer))
    model = _with_feedback(plain, ModelConfig(**FINE, quantizer=quantizer, feedback=True))
    _loss_if_unchanged(plain, model).backward()
    assert model.feedback[-1].weight.grad.abs().sum() > 0  # it learns from the first step
    assert model.encoder[0].weight.grad.abs().sum() > 0  # and the encoder still does


LOOKS = [dict(), dict(feedback_coarse=True), dict(feedback_passes=2)]


@pytest.mark.parametrize("look", LOOKS, ids=["look", "coarse-look", "third-look"])
@pytest.mark.parametrize("quantizer", QUANTIZERS, ids=["fsq", "lfq"])
def test_training_and_run_time_give_the_same_latent(float32_for, quantizer, look):
    """`latent` (training) and `exact_latent` (encode) are one function; in float32 they agree to
    rounding, and the feedback changes the latent."""
    float32_for("encoder")
    torch.manual_seed(0)
    plain = Tokenizer(ModelConfig(**FINE, quantizer=quantizer))
    model = _with_feedback(plain, ModelConfig(**FINE, quantizer=quantizer, feedback=True, **look))
    x = torch.rand(2, 3, 4, 32, 48) * 2 - 1
    before = model.exact_latent(x)
    _perturb_feedback(model, 0.1)
    with torch.no_grad():
        trained = model.latent(x)
    exact = model.exact_latent(x)
    assert (exact - before).abs().max() > 0.01
    assert torch.allclose(trained, exact, atol=1e-5)


def test_resuming_into_the_coarse_look_keeps_the_codes_and_it_learns_to_read_the_coarse_error():
    torch.manual_seed(0)
    plain = Tokenizer(ModelConfig(**FINE))
    looked = _with_feedback(plain, ModelConfig(**FINE, feedback=True))
    _perturb_feedback(looked, 0.1)
    coarse = _with_feedback(looked, ModelConfig(**FINE, feedback=True, feedback_coarse=True))
    _loss_if_unchanged(looked, coarse).backward()
    assert coarse.feedback[0].weight.shape[1] == looked.feedback[0].weight.shape[1] + STEM
    assert coarse.feedback[0].weight.grad[:, -STEM:].abs().sum() > 0  # the coarse error's channels


@pytest.mark.parametrize("quantizer", QUANTIZERS, ids=["fsq", "lfq"])
def test_resuming_one_look_into_a_third_keeps_the_codes_and_the_new_pass_learns(quantizer):
    torch.manual_seed(0)
    looked = _with_feedback(
        Tokenizer(ModelConfig(**FINE, quantizer=quantizer)), ModelConfig(**FINE, quantizer=quantizer, feedback=True)
    )
    _perturb_feedback(looked, 0.1)
    third = _with_feedback(looked, ModelConfig(**FINE, quantizer=quantizer, feedback=True, feedback_passes=2))
    _loss_if_unchanged(looked, third).backward()
    assert third.later_feedback[0][-1].weight.grad.abs().sum() > 0
    assert third.feedback[-1].weight.grad.abs().sum() > 0  # the first pass keeps learning


def test_the_third_look_sees_the_error_of_the_corrected_latent():
    torch.manual_seed(0)
    model = Tokenizer(ModelConfig(**FINE, feedback=True, feedback_passes=2))
    _perturb_feedback(model, 0.1)
    x = torch.rand(1, 3, 4, 32, 48) * 2 - 1
    folded = _fold(x)
    with torch.no_grad():
        z = model.encoder(folded)
        z = z + model.feedback(model._feedback_input(x, folded, z))
        want = z + model.later_feedback[0](model._feedback_input(x, folded, z))
        assert torch.allclose(model.latent(x), want)
        assert not torch.allclose(z, want, atol=1e-3)  # the third look moved it


def test_the_coarse_error_is_the_decode_without_the_finest_level():
    torch.manual_seed(0)
    model = Tokenizer(ModelConfig(**FINE, feedback=True, feedback_coarse=True))
    x = torch.rand(1, 3, 4, 32, 48) * 2 - 1
    folded = _fold(x)
    z = model.encoder(folded)
    with torch.no_grad():
        given = model._feedback_input(x, folded, z)
        got = given[:, -STEM:]
        zq = model.quantizer(z)[0]
        keep = torch.zeros(1, 8, 12, dtype=torch.bool)
        keep[:, ::2, ::2] = True  # levels 0 to 2 of 4 sit on the even rows and columns
        want = model.pixels(zq, keep) - x
    assert torch.allclose(got, _fold(want))
    assert not torch.allclose(got, given[:, STEM : 2 * STEM])  # not the full-budget error


@pytest.mark.parametrize("flag", ["feedback_coarse", "feedback_wide"])
def test_a_coarse_or_wide_look_needs_the_feedback_pass(flag):
    with pytest.raises(ValueError, match=f"{flag} needs feedback"):
        ModelConfig(**FINE, **{flag: True})


@pytest.mark.parametrize("bad", [dict(FINE, feedback_passes=2), dict(FINE, feedback=True, feedback_passes=0)])
def test_more_feedback_passes_need_the_first(bad):
    with pytest.raises(ValueError, match="feedback_passes must be 1, or more with feedback"):
        ModelConfig(**bad)


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
