"""Time of the probability path per tile: the exact integer hyper-decoder against the float64 one it replaced.

Both on one thread (as coding runs them), from the same hyper-latents of a 1056 x 1056 tile (66 x 66, values within
the tables' support): ``hyperprior`` (integer, float32 matrix products) and ``hyperprior_v2`` (the same float weights,
float64 native kernels), plus the integer path forced to float64 (what runs when float32 products may be reduced
precision). Prints seconds per tile and the ratios to the float64 path.

    python benchmarks/probability_path.py [--size 1056] [--repeats 5]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

from sarcodec.codec.lite import load_lite
from sarcodec.codec.registry import load_codec, resolve_codec
from sarcodec.models.codecs.integer import z_limit_of


def _seconds(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1056, help="tile side in pixels (a multiple of 16)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    new, old = load_codec("hyperprior").model, load_codec("hyperprior_v2").model
    limit = z_limit_of(new.hyper_density.table_offsets, new.hyper_density.table_lengths)
    side = args.size // new.downsampling_factor_total()
    z = torch.randint(-3, 4, (1, new.hyper_density.channels, side, side), generator=torch.Generator().manual_seed(0))
    z = z.clamp(-limit, limit).float()
    with torch.no_grad():
        t_old = _seconds(lambda: old._probability_path(z), args.repeats)
        t_new = _seconds(lambda: new._probability_path(z), args.repeats)
        t_new64 = _seconds(lambda: new.integer_hyper(z, float64=True), args.repeats)
    lite = load_lite(*resolve_codec("hyperprior"))
    z_np = z[0].numpy()
    t_lite = _seconds(lambda: lite.model.probability_path(z_np), args.repeats) if lite is not None else None
    print(f"probability path of a {args.size} x {args.size} tile, one thread, best of {args.repeats}:")
    print(f"float64 hyper-decoder (hyperprior_v2):         {t_old:.3f} s")
    print(f"integer hyper-decoder, float32 (hyperprior):   {t_new:.3f} s  ({t_old / t_new:.2f}x faster)")
    print(f"integer hyper-decoder, float64 (guard path):   {t_new64:.3f} s  ({t_old / t_new64:.2f}x faster)")
    if t_lite is None:
        print("PyTorch-free integer path: not available (onnx/onnxruntime missing)")
    else:
        print(f"integer, ONNX Runtime (the PyTorch-free path): {t_lite:.3f} s  ({t_old / t_lite:.2f}x faster; "
              f"{t_new / t_lite:.2f}x the PyTorch integer path)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
