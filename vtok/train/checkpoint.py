"""What training writes and reads back: checkpoints (weights, AdamW moments, place in the schedule),
weights of a related model fitted to start from, and the exported float16 weights with their
manifest entry.

A checkpoint is one safetensors file of float32 tensors: the model's own names, then
`optimizer.exp_avg.NAME`, `optimizer.exp_avg_sq.NAME`, `optimizer.step.NAME` and
`optimizer.lr_scale.NAME` (its share of the learning rate) per parameter, and `progress.step` and
`progress.seconds`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file

from vtok.errors import VtokError
from vtok.files import atomic_path, sha256_of, write_json
from vtok.model.architectures import ModelConfig
from vtok.model.tokenizer import Tokenizer, feedback_latent_at

__all__ = [
    "Progress",
    "TrainResult",
    "adapt",
    "float_state",
    "optimizer_state",
    "load_optimizer_state",
    "save_checkpoint",
    "load_weights",
    "lr_scales",
    "restore",
    "export",
    "write_weights",
]


@dataclass(frozen=True)
class Progress:
    """The place in the schedule a run starts from: steps and seconds already trained, and whether
    the optimizer moments were restored (then the learning rate needs no warm-up)."""

    step: int = 0
    seconds: float = 0.0
    resumed: bool = False


@dataclass
class TrainResult:
    steps: int
    seconds: float
    metrics: dict  # held-out figures: PSNR at full and partial budgets, codebook perplexity
    state: dict  # float32 state dict of the trained model


def float_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The model's state dict as float32, contiguous CPU tensors (as safetensors wants them)."""
    return {k: v.detach().float().cpu().contiguous() for k, v in model.state_dict().items()}


def adapt(state: dict, model: Tokenizer, log: Callable[[str], None]) -> dict:
    """Fit the weights of a related model to `model`, to start training from them.

    A convolution that took fewer input channels (the decoder before it took a keep mask) gets zero
    weights for the new ones, so the old behaviour is kept. An encoder or decoder with fewer residual
    blocks per stage gets identity blocks appended (`_deepen`); an encoder pass, feedback pass or
    decoder without a wide view gets one whose output starts at zero (`_add_wide_view`); a latent
    with fewer channels gets new ones that the decoder starts by ignoring (`_widen_latent`). A tensor
    of any other shape keeps `model`'s fresh initialisation.
    """
    own = model.state_dict()
    state = _widen_latent(_add_wide_view(_deepen(state, model, own, log), model, own, log), model, own, log)
    if not any(k in own and v.shape == own[k].shape for k, v in state.items()):
        raise VtokError("the weights to resume from share no layer with this architecture")
    out = {k: v for k, v in own.items() if k not in state}  # layers the old model lacked start fresh
    for k, v in state.items():
        want = own.get(k)
        if want is None:
            log(f"{k}: not in this architecture; dropped")
        elif v.shape == want.shape:
            out[k] = v
        elif (
            v.dim() == 4
            and v.shape[0] == want.shape[0]
            and v.shape[1] < want.shape[1]
            and v.shape[2:] == want.shape[2:]
        ):
            out[k] = torch.cat([v, v.new_zeros(v.shape[0], want.shape[1] - v.shape[1], *v.shape[2:])], 1)
        else:
            log(f"{k}: {tuple(v.shape)} does not fit {tuple(want.shape)}; starting it fresh")
            out[k] = want
    return out


def _stage_depth(state: dict, stage: str, first: int) -> int:
    """Residual blocks in one nn.Sequential stage, counted from its index `first`."""
    depth = 0
    while f"{stage}.{first + depth}.conv1.weight" in state:
        depth += 1
    return depth


def _move_down(state: dict, stage: str, first: int, by: int) -> dict:
    """`state` with the layers of the nn.Sequential `stage` from its index `first` on moved down `by`
    places, to make room for new layers before them. Other weights pass unchanged."""
    out = {}
    for key, value in state.items():
        head, _, rest = key.partition(f"{stage}.")
        index, _, name = rest.partition(".")
        if head == "" and index.isdigit() and int(index) >= first:
            key = f"{stage}.{int(index) + by}.{name}"
        out[key] = value
    return out


def _deepen(state: dict, model: Tokenizer, own: dict, log: Callable[[str], None]) -> dict:
    """Weights of a stride-4 model with fewer residual blocks per encoder or decoder stage,
    renumbered for `model`'s deeper one: the encoder's depth also holds for each feedback pass both
    have, and a stage's WideView deepens with it. Each new block is appended after the old ones with
    its last convolution at zero, so it starts as the identity and the model codes and decodes
    exactly as before. Other weights pass unchanged. `own` is `model`'s state dict.
    """
    if model.config.stride != 4:
        return state
    feedback = tuple((net, 1) for net in _feedback_nets(model) if f"{net}.0.weight" in state)
    # (stage, index of its first residual block): the encoder passes and `low` open with a convolution
    parts = (
        ("encoder", model.config.encoder_depth, (("encoder", 1), *feedback)),
        ("decoder", model.config.decoder_depth, (("decoder.low", 1), ("decoder.high", 0))),
    )
    for part, depth, stages in parts:
        old = {_stage_depth(state, stage, first) for stage, first in stages}
        if len(old) != 1 or not 0 < (was := old.pop()) < depth:
            continue
        log(f"{part}: {was} residual blocks per stage -> {depth}; the new ones start as the identity")
        for stage, first in stages:
            state = _deepen_stage(state, own, stage, first, was, depth)
            view = f"{stage}.{first + depth}.low"  # a WideView right after the blocks has as many of its own
            if _stage_depth(state, view, 1) == was and f"{view}.1.conv1.weight" in own:
                state = _deepen_stage(state, own, view, 1, was, depth)
    return state


def _deepen_stage(state: dict, own: dict, stage: str, first: int, was: int, depth: int) -> dict:
    """`state` with the nn.Sequential `stage`'s `was` residual blocks from index `first` made `depth`:
    the layers after them move down, and each new block takes `own`'s weights with its last
    convolution at zero, so it starts as the identity."""
    state = _move_down(state, stage, first + was, depth - was)
    for i in range(first + was, first + depth):
        for name in ("conv2.weight", "conv2.bias"):
            state[f"{stage}.{i}.{name}"] = torch.zeros_like(own[f"{stage}.{i}.{name}"])
    return state


def _add_wide_view(state: dict, model: Tokenizer, own: dict, log: Callable[[str], None]) -> dict:
    """Weights of a stride-4 model without a WideView where `model` has one, renumbered for `model`:
    after the first encoder pass's residual blocks (`encoder_wide`), after those of the decoder's
    1/8 branch (`decoder_wide`) and after those of each feedback pass (`feedback_wide`). The layers
    after the blocks move down one place, and the view takes `model`'s weights (`own`, its state
    dict) with its last convolution at zero, so the model codes and decodes exactly as before. Other
    weights pass unchanged."""
    config = model.config
    if config.stride != 4:
        return state
    places = (  # (flag, the nn.Sequential's name, where the view goes: after the opening convolution and blocks)
        (config.encoder_wide, "encoder", 1 + config.encoder_depth),
        (config.decoder_wide, "decoder.low", 1 + config.decoder_depth),
        *((config.feedback_wide, net, 1 + config.encoder_depth) for net in _feedback_nets(model)),
    )
    for wide, name, at in places:
        if not wide or f"{name}.{at}.low.0.weight" in state or f"{name}.{at}.weight" not in state:
            continue
        log(f"{name}: a wide view added after the residual blocks; it starts at zero")
        state = _move_down(state, name, at, 1)
        view = f"{name}.{at}.low."
        last = f"{view}{len(model.get_submodule(name)[at].low) - 2}."  # the convolution before the pixel shuffle
        state |= {k: torch.zeros_like(v) if k.startswith(last) else v for k, v in own.items() if k.startswith(view)}
    return state


def _widen_latent(state: dict, model: Tokenizer, own: dict, log: Callable[[str], None]) -> dict:
    """Weights of a model whose latent had fewer channels (FSQ levels or LFQ bits appended since),
    fitted to `model`. The encoder's last convolution keeps its rows and gets fresh ones for the new
    channels; the decoder's first convolution gets zero weights for them, inserted before the keep
    mask. Within one kind the model decodes exactly as before; from vtok-fsq's weights into vtok-lfq,
    the old channels' signs become the first bits. The fresh rows give the new channels a gradient
    at once. The old channels stay the low digits of the index. `own` is `model`'s state dict.
    """
    last = f"encoder.{len(model.encoder) - 1}"
    first = "decoder.inp" if model.config.stride == 4 else "decoder.0"
    old, new = state.get(f"{last}.weight"), own[f"{last}.weight"]
    if old is None or not old.shape[0] < new.shape[0] or old.shape[1:] != new.shape[1:]:
        return state
    was, dim = old.shape[0], new.shape[0]
    log(f"latent: {was} channels -> {dim}; the decoder starts by ignoring the new ones")
    out = dict(state)
    out[f"{last}.weight"] = torch.cat([old, new[was:]])
    out[f"{last}.bias"] = torch.cat([state[f"{last}.bias"], own[f"{last}.bias"][was:]])
    out[f"{first}.weight"] = _zero_columns(state[f"{first}.weight"], was, dim - was)
    if model.config.feedback:
        _widen_feedback(out, model, was, dim)
    return out


def _zero_columns(w: torch.Tensor, at: int, n: int) -> torch.Tensor:
    """Convolution weights w (out, in, ...) with n zero input channels inserted before input `at`."""
    return torch.cat([w[:, :at], w.new_zeros(w.shape[0], n, *w.shape[2:]), w[:, at:]], 1)


def _widen_feedback(state: dict, model: Tokenizer, was: int, dim: int) -> None:
    """Fit, in place, each feedback pass that `state` has to a latent widened from `was` channels to
    `dim`: the pass reads zero weights for the new channels of z (which sits after x and its error in
    its input), and its correction of them starts at zero, so the old channels' codes are unchanged.
    A pass laid out unlike `model`'s (a wide view only one of them has) is left to `adapt` to fit."""
    z_at = feedback_latent_at(model.config)
    for net in _feedback_nets(model):
        end = f"{net}.{len(model.get_submodule(net)) - 1}"
        if f"{net}.0.weight" not in state or state.get(f"{end}.weight", torch.empty(0)).shape[0] != was:
            continue
        state[f"{net}.0.weight"] = _zero_columns(state[f"{net}.0.weight"], z_at + was, dim - was)
        for name in (f"{end}.weight", f"{end}.bias"):
            state[name] = torch.cat([state[name], state[name].new_zeros(dim - was, *state[name].shape[1:])])


def _feedback_nets(model: Tokenizer) -> tuple[str, ...]:
    """The state-dict names of `model`'s feedback passes, in order (none without `feedback`)."""
    if not model.config.feedback:
        return ()
    return ("feedback", *(f"later_feedback.{i}" for i in range(model.config.feedback_passes - 1)))


def optimizer_state(opt: torch.optim.Optimizer, model: Tokenizer) -> dict[str, torch.Tensor]:
    """AdamW moments as flat float32 tensors named after their parameters, for a safetensors checkpoint."""
    names = {id(p): n for n, p in model.named_parameters()}
    out = {}
    for group in opt.param_groups:
        for p in group["params"]:
            out[f"optimizer.lr_scale.{names[id(p)]}"] = torch.tensor([float(group.get("scale", 1.0))])
    for p, st in opt.state.items():
        for key in ("exp_avg", "exp_avg_sq"):
            out[f"optimizer.{key}.{names[id(p)]}"] = st[key].detach().float().cpu().contiguous()
        out[f"optimizer.step.{names[id(p)]}"] = torch.as_tensor(st["step"], dtype=torch.float32).reshape(1)
    return out


def load_optimizer_state(opt: torch.optim.Optimizer, model: Tokenizer, state: dict) -> bool:
    """Restore AdamW moments saved by `optimizer_state`; True if every parameter got its own."""
    restored = 0
    for name, p in model.named_parameters():
        moment = state.get(f"optimizer.exp_avg.{name}")
        if moment is None or moment.shape != p.shape:  # a layer new to, or reshaped in, this architecture
            continue
        restored += 1
        opt.state[p] = {
            "step": state[f"optimizer.step.{name}"].reshape(()).clone(),
            "exp_avg": state[f"optimizer.exp_avg.{name}"].to(p.device).clone(),
            "exp_avg_sq": state[f"optimizer.exp_avg_sq.{name}"].to(p.device).clone(),
        }
    return restored == len(list(model.parameters()))


def save_checkpoint(path: Path, model: Tokenizer, opt: torch.optim.Optimizer, *, step: int, seconds: float) -> None:
    """Write weights, optimizer moments and the place in the schedule to `path`, atomically."""
    tensors = float_state(model) | optimizer_state(opt, model)
    tensors["progress.step"] = torch.tensor([float(step)])
    tensors["progress.seconds"] = torch.tensor([seconds])
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp))


def load_weights(model: Tokenizer, init: dict | None, log: Callable[[str], None]) -> set[str]:
    """Load the weights of `init` (a checkpoint's, or plain weights: related ones are adapted) into
    `model`; return the names of its parameters that did not come unchanged from them (new layers,
    and layers fitted to a new shape). Without `init`, every parameter is new."""
    names = {n for n, _ in model.named_parameters()}
    if init is None:
        return names
    weights = {k: v for k, v in init.items() if not k.startswith(("optimizer.", "progress."))}
    fitted = adapt(weights, model, log)
    model.load_state_dict(fitted, strict=True)
    taken = {id(v) for v in weights.values()}
    return {n for n in names if id(fitted[n]) not in taken}


def lr_scales(model: Tokenizer, init: dict | None, new: set[str], resumed_lr: float) -> dict[str, float]:
    """Each parameter's share of the learning rate: a checkpoint's own shares where it saved them (a
    run continues as it began), else 1 for `new` parameters and `resumed_lr` for the others."""
    out = {}
    for name, _ in model.named_parameters():
        saved = None if init is None else init.get(f"optimizer.lr_scale.{name}")
        out[name] = float(saved.item()) if saved is not None else 1.0 if name in new else resumed_lr
    return out


def restore(opt: torch.optim.Optimizer, model: Tokenizer, init: dict | None, log: Callable[[str], None]) -> Progress:
    """The place in the schedule to start from: a checkpoint's (with its optimizer moments, loaded
    into `opt`: resuming), or the start of a new schedule (plain weights, or none: fine-tuning)."""
    if init is None or "progress.step" not in init:
        return Progress()
    if not load_optimizer_state(opt, model, init):  # its moments only where they fit, and a new schedule
        log("the checkpoint is of a related architecture: starting a new schedule from its weights")
        return Progress()
    done = Progress(int(init["progress.step"].item()), float(init["progress.seconds"].item()), resumed=True)
    log(f"resuming at step {done.step} ({done.seconds:.0f}s trained)")
    return done


def export(result: TrainResult, *, name: str, config: ModelConfig, out_dir: Path, data: list[str]) -> dict:
    """Write `out_dir/NAME.safetensors` (float16) and its entry in `out_dir/manifest.json`; return the entry."""
    half = {k: v.half() if v.is_floating_point() else v for k, v in result.state.items()}
    return write_weights(
        out_dir,
        name,
        half,
        config=config.to_dict(),
        training={"data": data, "steps": result.steps, "seconds": round(result.seconds)},
        metrics={f"heldout_windows_{k}": v for k, v in result.metrics.items()},
    )


def write_weights(out_dir: Path, name: str, state: dict[str, torch.Tensor], **fields: object) -> dict:
    """Write `out_dir/NAME.safetensors` (the tensors as given) and its entry in `out_dir/manifest.json`:
    file, sha256, then `fields` (config, training, metrics). Return the entry.

    Other entries of an existing manifest are kept.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    weights = out_dir / f"{name}.safetensors"
    with atomic_path(weights) as tmp:
        save_file(state, str(tmp), metadata={"name": name})
    entry = {"file": weights.name, "sha256": sha256_of(weights), **fields}
    manifest_path = out_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {"models": {}}
    manifest["models"][name] = entry
    write_json(manifest_path, manifest)
    return entry
