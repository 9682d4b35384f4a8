"""sarcodec compress/decompress throughput per device and model in one run, without GeoTIFF or OpenJPEG (for a
machine that has neither rasterio nor imagecodecs, such as the GPU machine): a generated speckled uint16 amplitude
array (gamma speckle over smooth texture), coded through the API from memory to a ``.sarc`` file and back to memory,
end to end (tiling, network, entropy coding, file I/O). Prints MP/s per (device, model) and the ratio of each to the
first one (the reference measured in the same run; the runs alternate, so a busy machine slows all alike).

    python benchmarks/device_codec_speed.py [--size 4096] [--quality 4] [--devices cpu cuda] [--models hyperprior ...]
        [--repeat 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import sarcodec


def speckled_scene(size: int, seed: int = 0) -> np.ndarray:
    """A uint16 amplitude image: 4-look gamma speckle over a smooth random texture (GRD-like DN)."""
    rng = np.random.default_rng(seed)
    coarse = rng.gamma(2.0, 1.0, size=(size // 64 + 2, size // 64 + 2))
    texture = np.kron(coarse, np.ones((64, 64)))[:size, :size]
    intensity = texture * rng.gamma(4.0, 0.25, size=(size, size))
    return np.clip(np.sqrt(intensity) * 300.0, 1, 65535).astype(np.uint16)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--quality", type=float, default=4)
    parser.add_argument("--devices", nargs="+", default=["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    parser.add_argument("--models", nargs="+", default=["hyperprior"], help="shipped names or .safetensors files")
    parser.add_argument("--repeat", type=int, default=2, help="timed runs of each (the best is reported)")
    args = parser.parse_args()
    scene = speckled_scene(args.size)
    mp = scene.size / 1e6
    print(f"scene {args.size} x {args.size} uint16 ({mp:.1f} MP), quality {args.quality:g}, "
          f"torch {torch.__version__}, threads {torch.get_num_threads()}"
          + (f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""))
    cases = [(device, model) for device in args.devices for model in args.models]
    times: dict[tuple[str, str], list[tuple[float, float]]] = {case: [] for case in cases}
    sizes: dict[tuple[str, str], int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeat):
            for device, model in cases:
                sarc = Path(tmp) / "x.sarc"
                t0 = time.perf_counter()
                sarcodec.compress(scene, sarc, quality=args.quality, model=model, device=device, overwrite=True)
                t1 = time.perf_counter()
                sarcodec.decompress(sarc, model=model, device=device)
                times[device, model].append((t1 - t0, time.perf_counter() - t1))
                sizes[device, model] = sarc.stat().st_size
    rows = []
    for device, model in cases:
        enc, dec = (min(t[i] for t in times[device, model]) for i in (0, 1))
        rows.append((f"{device} {Path(model).stem}", mp / enc, mp / dec))
        print(f"{rows[-1][0]}: compress {mp / enc:.2f} MP/s ({enc:.2f} s), decompress {mp / dec:.2f} MP/s "
              f"({dec:.2f} s), {8 * sizes[device, model] / scene.size:.3f} bpp")
    ref = rows[0]
    for name, enc_mps, dec_mps in rows[1:]:
        print(f"ratio {name} / {ref[0]}: compress {enc_mps / ref[1]:.2f}x, decompress {dec_mps / ref[2]:.2f}x")


if __name__ == "__main__":
    main()
