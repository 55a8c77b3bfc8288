"""Encoder-side refinement: each block's latent optimised against the decoder before it is quantized.

The encoder is small and amortised: one forward pass guesses the latent. Gradient steps on the
decoded error find latents that decode better, by +0.6 to +1.4 dB at the whole budget levels after
30 steps on the test clips (README, benchmarks/results/refine.json), with the same decoder: files
stay the same format and any vtok decodes them.

The loss is measured at each budget level of the layout in turn (the full budget, then the prefixes
keeping 3, 2 and 1 levels), so that the codes stay good at every budget the elastic search or
`vtok trim` may choose: they still do not depend on the budget a block gets.

It costs a decoder pass forward and back per step, so an encode with 30 steps runs about 9x slower;
every level gets a step from 4 steps up. Gradients differ with the thread count, so refined codes
may too. Models with context are refused: their blocks decode with a context that refinement does
not have.
"""

import math

import torch
import torch.nn.functional as F

from vtok.errors import UsageError
from vtok.format.layout import position_levels
from vtok.model.tokenizer import Tokenizer, cpu_bf16

__all__ = ["refined_encode", "refine_latent", "check_refine", "LEARNING_RATE"]

LEARNING_RATE = 0.05  # Adam's, on latents before FSQ's bound; cosine to 0 over the steps


def check_refine(steps: int) -> None:
    """Refuse a step count that is not a whole number >= 0."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise UsageError(f"refine must be a whole number of steps >= 0, not {steps!r}", option="refine")


def refine_latent(tokenizer: Tokenizer, x: torch.Tensor, z: torch.Tensor, steps: int) -> torch.Tensor:
    """Adam on the latent z so that it decodes closer to x, level by level of the budget.

    tokenizer: its weights are not changed; x: float32 (B, 3, F, H, W) in [-1, 1];
    z: float32 (B, D, H/s, W/s), x's latent (`Tokenizer.exact_latent`). Returns a new latent like z.
    Blocks decode without context, as at a keyframe.
    """
    if steps <= 0:
        return z
    if tokenizer.config.context:
        raise UsageError("refine is for models without context", option="refine")
    rows, cols = z.shape[-2:]
    at = torch.from_numpy(position_levels(rows, cols, tokenizer.config.levels).astype("int64")).to(z.device)
    keeps = [(at < n).expand(len(z), -1, -1) for n in range(tokenizer.config.levels, 0, -1)]  # full first
    fast = z.device.type == "cpu" and cpu_bf16("decoder")  # as Tokenizer.decode runs, to suit what it gives
    with torch.inference_mode(False), torch.enable_grad():
        x, z = x.clone(), z.clone().requires_grad_(True)  # out of inference mode, to keep for backward
        opt = torch.optim.Adam([z], lr=LEARNING_RATE)
        for step in range(steps):
            with torch.autocast(z.device.type, dtype=torch.bfloat16, enabled=fast):
                y = tokenizer.pixels(tokenizer.quantizer(z)[0], keeps[step % len(keeps)])
            # summed, not averaged: each latent's gradient then does not shrink with the frame size,
            # which would bring it down to Adam's eps on large frames
            loss = F.mse_loss(y.float(), x, reduction="sum")
            (z.grad,) = torch.autograd.grad(loss, [z])  # the weights get no gradient
            opt.param_groups[0]["lr"] = LEARNING_RATE * 0.5 * (1 + math.cos(math.pi * step / steps))
            opt.step()
    return z.detach()


def refined_encode(tokenizer: Tokenizer, x: torch.Tensor, steps: int) -> torch.Tensor:
    """`Tokenizer.encode` with `steps` of refinement: x float32 (B, 3, F, H, W) in [-1, 1] -> indices
    int64 (B, H/s, W/s). 0 steps gives exactly `Tokenizer.encode`'s codes."""
    return tokenizer.indices_of(refine_latent(tokenizer, x, tokenizer.exact_latent(x), steps))
