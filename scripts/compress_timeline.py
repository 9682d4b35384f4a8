"""When each step before compress's first tile ends: a timeline of ``sarcodec compress`` in fresh processes.

Each run starts ``sarcodec compress SCENE`` in a new interpreter with probes on the steps of ``sarcodec.codec.api``
and ``sarcodec.codec.lossy`` (imports, opening the raster, the histogram pass, loading the model on its thread, the
first band's rows and mask) and stops it when the first tile starts; prints the seconds after the process was
started for each mark (the parent passes its wall-clock start, as ``benchmarks/codec_speed.py`` does).

    python scripts/compress_timeline.py SCENE.tif [--runs 3] [--pause 0] [-- COMPRESS OPTIONS]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROBE = """
import os, sys, threading, time
started = float(sys.argv[1])
def mark(label):
    os.write(2, f"MARK {time.time() - started:.3f} {threading.current_thread().name} {label}\\n".encode())
mark("interpreter up")
import sarcodec.codec.api as api, sarcodec.codec.lossy as lossy
mark("sarcodec imported")
def wrap(module, name, label):
    inner = getattr(module, name)
    def probe(*args, **kwargs):
        mark(label + " start")
        try:
            return inner(*args, **kwargs)
        finally:
            mark(label + " end")
    setattr(module, name, probe)
wrap(api, "open_raster", "open")
wrap(api, "db_histogram", "histogram")
wrap(api, "_load", "model")
wrap(lossy, "_band_rows", "band rows")
wrap(lossy, "encode_mask", "mask")
def first_tile(*args, **kwargs):
    mark("FIRST TILE")
    os._exit(0)
lossy._encode_band_tile = first_tile  # a tile job starts
from sarcodec.cli import main
main(sys.argv[2:])
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scene", type=Path)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--pause", type=float, default=0.0, help="seconds to wait before each run")
    args, options = parser.parse_known_args()  # the rest: compress options (after --)
    options = options[1:] if options[:1] == ["--"] else options
    with tempfile.TemporaryDirectory(prefix="sarcodec-timeline-") as work:
        command = ["compress", str(args.scene), "-o", str(Path(work) / "t.sarc"), "--overwrite", *options]
        for run in range(args.runs):
            time.sleep(args.pause)
            proc = subprocess.run([sys.executable, "-c", PROBE, f"{time.time():.6f}", *command],
                                  capture_output=True, text=True)
            marks = [line.split(maxsplit=3)[1:] for line in proc.stderr.splitlines() if line.startswith("MARK ")]
            if not any(label == "FIRST TILE" for _, _, label in marks):
                raise SystemExit(f"run {run + 1}: compress did not reach a tile:\n{proc.stderr}")
            print(f"run {run + 1}")
            for seconds, thread, label in marks:
                print(f"  {seconds:>7s} s  {thread:18s} {label}")
                if label == "FIRST TILE":
                    break
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
