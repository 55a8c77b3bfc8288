"""Tokenizer architectures: `ModelConfig`, the fields that build a `vtok.model.tokenizer.Tokenizer`
(stored in the weights manifest and in every `.vtok` header), and `ARCHITECTURES`, the designs
`vtok train` can build by name: the shipped ones first, then earlier designs and candidates, each
with what the equal-compute comparison found (benchmarks/results/architectures.md).
"""

from dataclasses import asdict, dataclass, field

from vtok.format.layout import FIRST_STRIDE, LAYOUTS, LEVELS

__all__ = ["ModelConfig", "ARCHITECTURES"]


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of a tokenizer; stored in the weights manifest and in every `.vtok` header."""

    quantizer: dict = field(default_factory=lambda: {"kind": "fsq", "levels": [8, 8, 8, 5, 5, 5]})
    frames: int = 4  # frames per block: the temporal size of one token
    width: int = 96  # channels at 1/4 resolution
    latent_width: int = 256  # channels at 1/8 resolution
    encoder_depth: int = 2  # residual blocks per encoder stage
    decoder_depth: int = 3  # residual blocks per decoder stage: decoding quality pays most
    stride: int = FIRST_STRIDE  # pixels per token side (8 or 4); inputs are padded to a multiple of it
    levels: int = LEVELS  # budget levels per 32x32 tile (vtok.format.layout): 3 at stride 8, 4 at stride 4
    context: bool = False  # the decoder sees the previous block's last decoded frame
    level_map: bool = False  # encoder and decoder see each position's budget level (stride 4 only)
    feedback: bool = False  # a second encoder pass sees the first pass's decoded error (stride 4 only)
    feedback_coarse: bool = False  # the feedback pass also sees the error at a quarter of the tokens
    feedback_passes: int = 1  # feedback passes, each with its own weights, each seeing the last one's error
    encoder_wide: bool = False  # the first encoder pass adds a 1/8-resolution branch (stride 4 only)
    decoder_wide: bool = False  # the decoder's 1/8 branch adds a 1/16-resolution one (stride 4 only)
    feedback_wide: bool = False  # each feedback pass adds a 1/8-resolution branch, as `encoder_wide`

    def __post_init__(self) -> None:
        if (self.stride, self.levels) not in LAYOUTS:
            raise ValueError(f"unsupported layout: stride {self.stride} with {self.levels} levels")
        if self.level_map and self.stride != 4:
            raise ValueError("a level map needs the stride-4 layout")
        if self.feedback and (self.stride != 4 or self.context):
            raise ValueError("feedback needs the stride-4 layout and no context")
        if (self.encoder_wide or self.decoder_wide) and self.stride != 4:
            raise ValueError("a wide encoder or decoder needs the stride-4 layout")
        for flag in ("feedback_coarse", "feedback_wide"):
            if getattr(self, flag) and not self.feedback:
                raise ValueError(f"{flag} needs feedback")
        if self.feedback_passes < 1 or (self.feedback_passes > 1 and not self.feedback):
            raise ValueError("feedback_passes must be 1, or more with feedback")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        return cls(**known)


# Named architectures that `vtok train` can build from scratch.
_FINE = {"width": 128, "latent_width": 256, "encoder_depth": 2, "decoder_depth": 2, "stride": 4, "levels": 4}
_FSQ_1M = {"kind": "fsq", "levels": [8, 8, 8, 5, 5, 5, 4, 4]}  # 1,024,000 codes (about 20 bits): eight channels
_FSQ_4M = {"kind": "fsq", "levels": [*_FSQ_1M["levels"], 4]}  # 4,096,000 codes (about 22 bits): nine channels
_LFQ_1M = {"kind": "lfq", "bits": 20}  # 1,048,576 codes
ARCHITECTURES: dict[str, ModelConfig] = {
    # nine FSQ channels (the ninth: +0.02 to +0.09 dB at every budget, 2026-12-08), a 1/8-resolution
    # branch in the encoder (a wide view: +0.15 to +0.27 dB from 16 to 128 tokens per frame,
    # 2026-12-07), and a second encoder pass that sees the first one's decoded error and corrects the
    # latent: latents optimised against the decoder (`--refine`) beat the encoder's by 1 dB
    "vtok-fsq": ModelConfig(**_FINE, quantizer=_FSQ_4M, feedback=True, encoder_wide=True),
    # 20 LFQ bits, 1,048,576 codes (about as many bits as vtok-fsq's first eight channels), the same second look,
    # and a third: a second feedback pass with its own weights sees the corrected codes' error
    "vtok-lfq": ModelConfig(**_FINE, quantizer=_LFQ_1M, feedback=True, feedback_passes=2),
    # earlier designs, and candidates: those that lost the equal-compute comparison, and those not yet
    # compared (benchmarks/results/architectures.md)
    "vtok-fsq-64k": ModelConfig(**_FINE),  # six FSQ channels, 64,000 codes: vtok-fsq until 2026-12-01
    # seven FSQ channels, 256,000 codes: vtok-fsq until 2026-12-02
    "vtok-fsq-256k": ModelConfig(**_FINE, quantizer={"kind": "fsq", "levels": [8, 8, 8, 5, 5, 5, 4]}),
    "vtok-lfq-64k": ModelConfig(**_FINE, quantizer={"kind": "lfq", "bits": 16}),  # vtok-lfq until 2026-12-02
    # 18 LFQ bits, MAGVIT-v2's 2^18 = 262,144 codes: vtok-lfq as shipped with weights db9d1155
    "vtok-lfq-262k": ModelConfig(**_FINE, quantizer={"kind": "lfq", "bits": 18}),
    "vtok-fsq-context": ModelConfig(**_FINE, quantizer=_FSQ_1M, context=True),
    "vtok-fsq-deep": ModelConfig(**_FINE | {"decoder_depth": 3}, quantizer=_FSQ_1M),  # a third block per stage
    # four residual blocks in the encoder: latents optimised against the decoder beat the encoder's by
    # about 1 dB, so the two-block encoder may be what holds the model back
    "vtok-fsq-deep-encoder": ModelConfig(**_FINE | {"encoder_depth": 4}, quantizer=_FSQ_1M),
    "vtok-fsq-levels": ModelConfig(**_FINE, quantizer=_FSQ_1M, level_map=True),  # codes know their budget level
    "vtok-lfq-1m": ModelConfig(**_FINE, quantizer=_LFQ_1M),  # without the second pass: vtok-lfq until 2026-12-05
    # the second look alone: vtok-lfq until 2026-12-06
    "vtok-lfq-second-look": ModelConfig(**_FINE, quantizer=_LFQ_1M, feedback=True),
    "vtok-fsq-1m": ModelConfig(**_FINE, quantizer=_FSQ_1M),  # without the second pass: vtok-fsq until 2026-12-05
    # the second look without the wide view: vtok-fsq until 2026-12-07
    "vtok-fsq-second-look": ModelConfig(**_FINE, quantizer=_FSQ_1M, feedback=True),
    # the second look also sees the error at a quarter of the tokens: +0.10 dB at 256 tokens per frame,
    # losses at 16 and 1,024, encoding a decoder pass slower (2026-12-06)
    "vtok-fsq-coarse-look": ModelConfig(**_FINE, quantizer=_FSQ_1M, feedback=True, feedback_coarse=True),
    # vtok-lfq's third look, for vtok-fsq: +0.20 dB at 1,024 tokens per frame, behind from 16 to 256,
    # encoding at 0.73x (2026-12-06)
    "vtok-fsq-third-look": ModelConfig(**_FINE, quantizer=_FSQ_1M, feedback=True, feedback_passes=2),
    # 22 LFQ bits, 4,194,304 codes, with vtok-lfq's two looks: +0.19 to +0.29 dB from 16 to 256 tokens
    # per frame, 0.11 behind at 1,024, also with half the windows at the full budget (2026-12-06)
    "vtok-lfq-4m": ModelConfig(**_FINE, quantizer={"kind": "lfq", "bits": 22}, feedback=True, feedback_passes=2),
    # vtok-fsq's wide view for vtok-lfq: +0.34 to +0.45 dB from 16 to 128 tokens per frame, -0.35 at
    # 1,024 and fewer blocks meeting T=0.003; at batch 16 +0.25 to +0.37 and -0.42; with the old
    # layers at `--resumed-lr 0.1`, +0.18 to +0.30 and -0.16 (2026-12-07)
    "vtok-lfq-wide-encoder": ModelConfig(
        **_FINE, quantizer=_LFQ_1M, feedback=True, feedback_passes=2, encoder_wide=True
    ),
    # a 1/16 branch in the decoder's 1/8 one, for infilling small budgets: level with vtok-fsq within
    # 0.01 dB from 32 tokens per frame up, 256 included, 0.04 behind at 16 (2026-12-07, on the eight
    # channels of the day; like the next, it now builds on vtok-fsq's nine)
    "vtok-fsq-wide-decoder": ModelConfig(
        **_FINE, quantizer=_FSQ_4M, feedback=True, encoder_wide=True, decoder_wide=True
    ),
    # eight FSQ channels with the wide view: vtok-fsq until 2026-12-08
    "vtok-fsq-wide-encoder": ModelConfig(**_FINE, quantizer=_FSQ_1M, feedback=True, encoder_wide=True),
    # vtok-fsq's wide view in its feedback pass too, to see the error over a wider area (not yet compared)
    "vtok-fsq-wide-feedback": ModelConfig(
        **_FINE, quantizer=_FSQ_4M, feedback=True, encoder_wide=True, feedback_wide=True
    ),
    "vtok-fsq-s8": ModelConfig(),  # the first design: one token per 4x8x8 pixels
    "vtok-lfq-s8": ModelConfig(quantizer={"kind": "lfq", "bits": 16}),
}
