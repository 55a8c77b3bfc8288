"""The mean of several training runs' weights of one model, weight by weight: how the shipped vtok-fsq
has been made since 3e089fd8, from two seeds of one resume (benchmarks/results/architectures.md,
twenty-eighth session on).

    python benchmarks/mean_weights.py OUT RUN_DIR RUN_DIR... [--model vtok-fsq]

Each RUN_DIR is a `vtok train -o` folder holding NAME.safetensors and its manifest.json entry; all
must share one config, and each file must match its manifest sha256. OUT gets NAME.safetensors (the
float32 mean, stored in the runs' dtype) and a manifest.json entry with the first run's config and
the new sha256; its held-out metrics are left out, since the runs' own do not describe the mean
(recompute them before shipping).
"""

import argparse
from pathlib import Path

import torch

from vtok.errors import ModelError
from vtok.model.registry import read_manifest, verified_weights
from vtok.train.checkpoint import write_weights


def mean_state(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The mean of same-keyed state dicts, computed in float32 and stored in the first's dtypes."""
    if any(s.keys() != states[0].keys() or any(s[k].shape != v.shape for k, v in states[0].items()) for s in states):
        raise SystemExit("the runs' weights do not have the same tensors")
    return {k: (sum(s[k].float() for s in states) / len(states)).to(v.dtype) for k, v in states[0].items()}


def run_entry(run: Path, model: str) -> dict:
    """The manifest entry of `model` in a run folder."""
    try:
        return read_manifest(run, str(run))[model]
    except (ModelError, KeyError, OSError):
        raise SystemExit(f"{run}: no manifest.json entry for {model}") from None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path)
    p.add_argument("runs", type=Path, nargs="+")
    p.add_argument("--model", default="vtok-fsq")
    args = p.parse_args(argv)
    entries = [run_entry(run, args.model) for run in args.runs]
    if any(e["config"] != entries[0]["config"] for e in entries):
        raise SystemExit("the runs were trained with different configs")
    try:
        states = [
            verified_weights(run / e["file"], e["sha256"], f"{run}#{args.model}")
            for run, e in zip(args.runs, entries, strict=True)
        ]
    except ModelError as e:
        raise SystemExit(str(e)) from None
    state = mean_state(states)
    training = {"mean_of": [str(run) for run in args.runs], "runs": [e["training"] for e in entries]}
    entry = write_weights(args.out, args.model, state, config=entries[0]["config"], training=training)
    print(f"{args.out / entry['file']}: the mean of {len(args.runs)} runs, sha256 {entry['sha256']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
