"""Compress/decompress throughput of sarcodec against OpenJPEG and HTJ2K, peak memory and start-up latency.

Generates a seeded SIZE x SIZE uint16 amplitude GeoTIFF with speckle (``prepare_bench.make_scene``; default
10 000 x 10 000), then, each in its own process (peak RSS polled every 20 ms):

- ``sarcodec compress`` (default model, quality 4) and ``sarcodec decompress`` end to end: GeoTIFF in, .sarc,
  GeoTIFF out (reading, the histogram pass, preprocessing, tiles, entropy coding, writing);
- the same two commands three times more with a probe that records when the first tile starts (seconds after the
  process was created: interpreter, imports, model, the histogram pass of compress) and stops them there;
- the references on the scene's working representation as uint16, timed around the codec calls only (in memory):
  OpenJPEG (Pillow, irreversible 9/7) at the bitrate sarcodec reached, and HTJ2K (OpenJPH via imagecodecs) at the
  quantization step whose bitrate on a 1024 x 1024 crop is closest to it.

Prints MP/s of each, the ratios sarcodec/OpenJPEG and sarcodec/HTJ2K, the peak RSS and the first-tile latency,
and the issue's targets (CPU: compress >= 1.0x OpenJPEG encode, decompress >= 0.15x OpenJPEG decode, peak RSS
< 1.5 GB, first tile < 1 s; GPU: >= 100 MP/s each way). ``--device cuda`` runs sarcodec on the GPU.

    python benchmarks/codec_speed.py [--size 10000] [--quality 4 | --max-error DB | --lossless] [--device auto]
                                     [--model M] [--compare-model M2] [--compare-torch]
                                     [--workdir DIR] [--keep]

``--compare-model`` times the same two commands with a second codec in the same run (e.g. ``hyperprior_v2``, the
same transforms with the float64 probability path) and prints the speed-ups; ``--compare-torch`` times
``compress`` and ``decompress --runtime torch`` too (PyTorch instead of the default PyTorch-free coding). ``--device
auto`` runs both commands on the GPU when there is one, else on the CPU (where both take their default runtime).
sarcodec is byte-compiled first, as an installed package is.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import sarcodec as sarcodec_package  # noqa: E402
from prepare_bench import make_scene, run_measured, work_folder  # noqa: E402

REFERENCES = """
import io, json, sys, time
import imagecodecs
import numpy as np
from PIL import Image
from sarcodec.io.raster import open_raster
from sarcodec.preprocess import forward, params_for_array
Image.MAX_IMAGE_PIXELS = None
raw = open_raster(sys.argv[1]).read()
x, _ = forward(raw, params_for_array(raw, "amplitude", nodata=0))
u16 = np.rint(x * 65535).astype(np.uint16)
bpp = float(sys.argv[2])
out = {}
t0 = time.perf_counter()
buf = io.BytesIO()
Image.fromarray(u16).save(buf, format="JPEG2000", quality_mode="rates", quality_layers=[16 / bpp], irreversible=True)
t1 = time.perf_counter()
np.asarray(Image.open(io.BytesIO(buf.getvalue())))
t2 = time.perf_counter()
out["openjpeg"] = {"encode_s": t1 - t0, "decode_s": t2 - t1, "bpp": len(buf.getvalue()) * 8 / u16.size}
crop = u16[:1024, :1024]
steps = [0.6, 0.4, 0.3, 0.25, 0.2, 0.15, 0.12, 0.1, 0.075, 0.05, 0.03, 0.02, 0.01, 0.005]
step = min(steps, key=lambda s: abs(len(imagecodecs.htj2k_encode(crop, level=s)) * 8 / crop.size - bpp))
t0 = time.perf_counter()
data = imagecodecs.htj2k_encode(u16, level=step)
t1 = time.perf_counter()
imagecodecs.htj2k_decode(data)
t2 = time.perf_counter()
out["htj2k"] = {"encode_s": t1 - t0, "decode_s": t2 - t1, "bpp": len(data) * 8 / u16.size, "step": step}
print(json.dumps(out))
"""

# Runs the CLI with a probe on the first tile job: prints the seconds since the parent started the process (the
# wall-clock time it passes in argv[1]) on stderr and ends the process there (what is left is a partial temporary
# file in the work directory). psutil's process creation time is not used: on Linux it is built on the boot time in
# whole seconds, ~1 s off here (the first-tile figures of sarcodec <= 0.5 carry that offset).
FIRST_TILE = """
import os, sys, time
started = float(sys.argv[1])
import importlib
module, name = sys.argv[2].split(":")
def probe(*args, **kwargs):
    os.write(2, f"FIRST_TILE {time.time() - started:.3f}\\n".encode())  # one write: workers may race here
    os._exit(0)
setattr(importlib.import_module(module), name, probe)
from sarcodec.cli import main
raise SystemExit(main(sys.argv[3:]))
"""


def first_tile_seconds(function: str, args: list[str], runs: int = 3) -> list[float]:
    """Seconds from starting ``sarcodec ARGS`` (interpreter, imports, model, ...) to the first call of
    ``function`` ("module:name"), in each of ``runs`` processes (one run varies by ~0.3 s on this machine)."""
    seconds = []
    for _ in range(runs):
        proc = subprocess.run([sys.executable, "-c", FIRST_TILE, f"{time.time():.6f}", function, *args],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"sarcodec {' '.join(args)} failed:\n{proc.stderr}")
        seconds.append(float(next(line.split()[1] for line in proc.stderr.splitlines()
                                  if line.startswith("FIRST_TILE"))))
    return seconds


def median_of(seconds: list[float]) -> str:
    """'M s (median of a, b, c)'."""
    return f"{statistics.median(seconds):.2f} s (median of {', '.join(f'{s:.2f}' for s in seconds)})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=10_000)
    parser.add_argument("--quality", type=float, default=4)
    parser.add_argument("--max-error", type=float, default=None, metavar="DB",
                        help="measure the near-lossless mode at this bound (dB) instead of quality 4")
    parser.add_argument("--lossless", action="store_true", help="measure the lossless mode instead")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--model", default=None, help="codec to measure (default: the default codec)")
    parser.add_argument("--compare-model", default=None, metavar="MODEL",
                        help="also time compress/decompress with this codec in the same run, and print the ratios")
    parser.add_argument("--compare-torch", action="store_true",
                        help="also time compress and decompress with --runtime torch (PyTorch) in the same run")
    args = parser.parse_args()
    import torch

    # Byte-compile sarcodec first, as an installed package is (with PYTHONDONTWRITEBYTECODE set, as on the machine
    # this was written on, every run would compile its modules again: ~0.1 s of start-up that users do not pay).
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(Path(sarcodec_package.__file__).parent)], check=True)

    gpu = (args.device == "auto" and torch.cuda.is_available()) or args.device.startswith("cuda")
    device = "cuda" if gpu and args.device == "auto" else "cpu" if args.device == "auto" else args.device
    with work_folder(args.workdir, args.keep, "sarcodec-codec-speed-") as work:
        scene = work / f"speckle_{args.size}.tif"
        if not scene.exists():
            make_scene(scene, args.size)
        mpix = args.size * args.size / 1e6
        sarc, rec = work / "scene.sarc", work / "scene_rec.tif"
        mode = (["--lossless"] if args.lossless else ["--max-error", str(args.max_error)] if args.max_error
                else ["--quality", str(args.quality)])
        model = ["--model", args.model] if args.model else []
        compress = ["compress", str(scene), "-o", str(sarc), *mode, *model, "--device", device, "--overwrite"]
        decompress = ["decompress", str(sarc), "-o", str(rec), "--device", device, "--overwrite"]
        sarcodec = [sys.executable, "-m", "sarcodec"]
        enc_s, enc_rss = run_measured([*sarcodec, *compress])
        dec_s, dec_rss = run_measured([*sarcodec, *decompress])
        other = None
        if args.compare_model:
            other_sarc = work / "other.sarc"
            other = (run_measured([*sarcodec, "compress", str(scene), "-o", str(other_sarc), *mode, "--model",
                                   args.compare_model, "--device", device, "--overwrite"])[0],
                     run_measured([*sarcodec, "decompress", str(other_sarc), "-o", str(work / "other_rec.tif"),
                                   "--device", device, "--overwrite"])[0],
                     other_sarc.stat().st_size * 8 / (args.size * args.size))
        bounded = args.lossless or args.max_error is not None
        enc_first = first_tile_seconds("sarcodec.codec.bounded:bounded_record" if bounded
                                       else "sarcodec.codec.lossy:_encode_band_tile", compress)
        dec_first = first_tile_seconds("sarcodec.codec.bounded:decode_bounded_tile" if bounded
                                       else "sarcodec.codec.lossy:decode_region", decompress)
        torch_runs = None
        if args.compare_torch and not bounded:
            torch_sarc = work / "torch.sarc"
            enc_torch = [*compress, "--runtime", "torch"]
            enc_torch[enc_torch.index(str(sarc))] = str(torch_sarc)
            dec_torch = [*decompress, "--runtime", "torch"]
            torch_runs = ((*run_measured([*sarcodec, *enc_torch]),
                           first_tile_seconds("sarcodec.codec.lossy:_encode_band_tile", enc_torch),
                           torch_sarc.stat().st_size * 8 / (args.size * args.size)),
                          (*run_measured([*sarcodec, *dec_torch]),
                           first_tile_seconds("sarcodec.codec.lossy:decode_region", dec_torch)))
        bpp = sarc.stat().st_size * 8 / (args.size * args.size)
        ref = json.loads(subprocess.run([sys.executable, "-c", REFERENCES, str(scene), str(bpp)], check=True,
                                        capture_output=True, text=True).stdout)
        oj, ht = ref["openjpeg"], ref["htj2k"]
        print(f"scene: {args.size} x {args.size} uint16 amplitude ({mpix:.1f} MP), {' '.join(mode).lstrip('-')}, sarcodec "
              f"device {'cuda' if gpu else 'cpu'}, torch threads {torch.get_num_threads()}")
        print(f"sarcodec compress   (end to end): {mpix / enc_s:7.2f} MP/s {enc_s:7.1f} s  {bpp:.3f} bpp  "
              f"peak RSS {enc_rss / 2**20:6.0f} MiB  first tile after {median_of(enc_first)}")
        print(f"sarcodec decompress (end to end): {mpix / dec_s:7.2f} MP/s {dec_s:7.1f} s               "
              f"peak RSS {dec_rss / 2**20:6.0f} MiB  first tile after {median_of(dec_first)}")
        if torch_runs is not None:
            (e_s, e_rss, e_first, e_bpp), (t_s, t_rss, t_first) = torch_runs
            print(f"compress --runtime torch (same run):   {mpix / e_s:7.2f} MP/s {e_s:7.1f} s  {e_bpp:.3f} bpp  peak RSS "
                  f"{e_rss / 2**20:6.0f} MiB  first tile after {median_of(e_first)}; the default encoder is "
                  f"{e_s / enc_s:.2f}x as fast")
            print(f"decompress --runtime torch (same run): {mpix / t_s:7.2f} MP/s {t_s:7.1f} s  peak RSS "
                  f"{t_rss / 2**20:6.0f} MiB  first tile after {median_of(t_first)}; the default decoder is "
                  f"{t_s / dec_s:.2f}x as fast")
        if other is not None:
            print(f"{args.compare_model} compress (same run): {mpix / other[0]:7.2f} MP/s {other[0]:7.1f} s  "
                  f"{other[2]:.3f} bpp; decompress {mpix / other[1]:7.2f} MP/s {other[1]:7.1f} s")
            print(f"speed-up over {args.compare_model}: compress {other[0] / enc_s:.2f}x, "
                  f"decompress {other[1] / dec_s:.2f}x")
        for name, r in (("OpenJPEG", oj), ("HTJ2K   ", ht)):
            print(f"{name} encode (codec only):    {mpix / r['encode_s']:7.2f} MP/s {r['encode_s']:7.1f} s  {r['bpp']:.3f} bpp")
            print(f"{name} decode (codec only):    {mpix / r['decode_s']:7.2f} MP/s {r['decode_s']:7.1f} s")
        enc_ratio, dec_ratio = oj["encode_s"] / enc_s, oj["decode_s"] / dec_s
        print(f"ratio sarcodec/OpenJPEG: compress {enc_ratio:.3f}, decompress {dec_ratio:.3f}")
        print(f"ratio sarcodec/HTJ2K:    compress {ht['encode_s'] / enc_s:.3f}, decompress {ht['decode_s'] / dec_s:.4f}")
        if gpu:
            checks = [("compress >= 100 MP/s", mpix / enc_s >= 100), ("decompress >= 100 MP/s", mpix / dec_s >= 100)]
        else:
            checks = [("compress >= 1.0x OpenJPEG encode", enc_ratio >= 1.0),
                      ("decompress >= 0.15x OpenJPEG decode", dec_ratio >= 0.15),
                      ("peak RSS < 1.5 GB", max(enc_rss, dec_rss) < 1.5e9),
                      ("first tile < 1 s (median of 3 runs)",
                       max(statistics.median(enc_first), statistics.median(dec_first)) < 1.0)]
        for text, ok in checks:
            print(f"target {text}: {'met' if ok else 'NOT met'}")
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
