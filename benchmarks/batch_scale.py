"""Scenes per minute of ``sarcodec batch`` (Dask distributed) with 1 and with 2 workers on the same scenes.

Default inputs: 12 scenes, the 3 bundled samples (samples/opera, 100 x 100 float32) and the first 9 images of
../shared/data/sar/dev in name order (128 x 128 MSTAR chips, 256 x 256 Sentinel-1 crops); or the paths given
(files or folders). ``--repeat R`` lists each scene R times (as copies under the work directory) for a longer,
steadier measurement.

For each worker count, in the same run:

- end to end: ``run_batch(workers=N)`` into a fresh folder, as ``sarcodec batch --workers N`` pays it (local
  cluster start, each worker importing PyTorch and loading the model, the scenes, the shutdown);
- steady: a ``LocalCluster`` of N single-threaded worker processes, started and warmed first (each worker compresses
  one sample: imports and model loaded, as for every scene of a long batch but the first), then ``--rounds`` timed
  ``run_batch(scheduler=...)`` runs, each into a fresh folder (client connection included); the fastest counts.

Prints scenes/minute of each and the ratio 2 workers / 1 worker of both (2.0 would be perfect scaling; the cores
this process may use and the load average are printed, since other jobs on the machine lower it).

    python benchmarks/batch_scale.py [PATHS...] [--quality 4] [--repeat R] [--rounds 3] [--workdir DIR] [--keep]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from prepare_bench import work_folder  # noqa: E402
DEV = REPO.parent / "shared" / "data" / "sar" / "dev"


def default_scenes() -> list[Path]:
    """The 3 bundled samples and the first 9 dev images (12 scenes)."""
    samples = sorted((REPO / "samples" / "opera").glob("*.tif"))
    if not DEV.is_dir():
        raise SystemExit(f"{DEV} not found: give the scenes as arguments")
    return samples + sorted(DEV.glob("*.tif"))[:9]


def warm(sample: str, folder: str) -> None:
    """Run on each worker: compress one sample, so that PyTorch, the model and the coders are loaded."""
    from sarcodec.codec.api import compress

    compress(sample, Path(folder) / f"warm_{os.getpid()}.sarc", quality=4, device="cpu", overwrite=True)


def timed_batch(scenes: list[Path], outdir: Path, quality: float, **where: Any) -> float:
    """Seconds of one run_batch that must code every scene."""
    from sarcodec.deploy.batch import run_batch

    start = time.perf_counter()
    rows = run_batch(scenes, outdir, options={"quality": quality}, log=lambda line: None, **where)
    seconds = time.perf_counter() - start
    failed = [row for row in rows if row["status"] != "done"]
    if failed:
        raise SystemExit(f"{len(failed)} scene(s) not done, first: {failed[0]}")
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", type=Path, help="scenes or folders (default: 12, see above)")
    parser.add_argument("--quality", type=float, default=4)
    parser.add_argument("--repeat", type=int, default=1, help="list each scene this many times")
    parser.add_argument("--rounds", type=int, default=3, help="steady runs per worker count (the fastest counts)")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    from distributed import Client, LocalCluster

    from sarcodec.io.raster import find_rasters, open_raster

    with work_folder(args.workdir, args.keep, "sarcodec-batch-scale-") as work:
        scenes = find_rasters(args.paths) if args.paths else default_scenes()
        if args.repeat > 1:  # copies with distinct names: one output each
            copies = work / "scenes"
            copies.mkdir(exist_ok=True)
            for r in range(args.repeat):
                for scene in scenes:
                    shutil.copy(scene, copies / f"{scene.stem}_r{r}{scene.suffix}")
            scenes = sorted(copies.iterdir())
        pixels = 0
        for scene in scenes:
            with open_raster(scene, 1) as reader:
                pixels += reader.info.height * reader.info.width
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        print(f"scenes: {len(scenes)} ({pixels / 1e6:.2f} MP), quality {args.quality:g}; cores {cores}, load average "
              f"{os.getloadavg()[0]:.2f} at the start")
        rates: dict[str, dict[int, float]] = {"end to end": {}, "steady": {}}
        for n in (1, 2):
            seconds = timed_batch(scenes, work / f"cold_{n}", args.quality, workers=n)
            rates["end to end"][n] = len(scenes) * 60 / seconds
            print(f"{n} worker(s), end to end: {rates['end to end'][n]:7.1f} scenes/min  {seconds:6.1f} s")
            with (LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster,
                  Client(cluster) as client):
                client.run(warm, str(scenes[0]), str(work))
                seconds = min(timed_batch(scenes, work / f"steady_{n}_{r}", args.quality,
                                          scheduler=cluster.scheduler_address) for r in range(args.rounds))
            rates["steady"][n] = len(scenes) * 60 / seconds
            print(f"{n} worker(s), steady:     {rates['steady'][n]:7.1f} scenes/min  {seconds:6.1f} s "
                  f"({pixels / 1e6 / seconds:.2f} MP/s)")
        for kind, rate in rates.items():
            print(f"ratio 2 workers/1 worker, {kind}: {rate[2] / rate[1]:.2f}")
        print(f"load average {os.getloadavg()[0]:.2f} at the end")
        return 0


if __name__ == "__main__":
    sys.exit(main())
