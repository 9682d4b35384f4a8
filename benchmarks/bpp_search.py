"""``compress --bpp`` against another checkout: the quality each chooses, the time, and how many tiles each codes.

    python benchmarks/bpp_search.py /tmp/base0 IMAGE [IMAGE ...] [--targets 0.3 0.8 1.5]

``/tmp/base0`` is another checkout (``git worktree add /tmp/base0 REV``). For each image and target, both checkouts
compress with ``bpp=target`` through the API in fresh processes of this interpreter, one after the other; the script
counts the tile codings (``lossy._code_region``: entropy coding, synthesis and side layer) and, where the checkout
has it, the payload-only estimates (``lossy._payload_bytes``), and prints the ratio of the times (other / this).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

WORKER = r"""
import json, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
import sarcodec
from sarcodec.codec import lossy
calls = {"full": 0, "estimates": 0}
def counted(function, key):
    def wrapper(*args, **kwargs):
        calls[key] += 1
        return function(*args, **kwargs)
    return wrapper
lossy._code_region = counted(lossy._code_region, "full")
if hasattr(lossy, "_payload_bytes"):
    lossy._payload_bytes = counted(lossy._payload_bytes, "estimates")
with tempfile.TemporaryDirectory() as folder:
    start = time.perf_counter()
    result = sarcodec.compress(Path(sys.argv[2]), Path(folder) / "a.sarc", bpp=float(sys.argv[3]))
    seconds = time.perf_counter() - start
print(json.dumps({"version": sarcodec.__version__, "quality": result.quality, "bpp": result.bpp,
                  "seconds": seconds, **calls}))
"""


def run(root: Path, image: Path, target: float) -> dict[str, float]:
    proc = subprocess.run([sys.executable, "-c", WORKER, str(root), str(image), str(target)], capture_output=True,
                          text=True, check=True)
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("other", type=Path, help="the other checkout")
    parser.add_argument("images", type=Path, nargs="+")
    parser.add_argument("--targets", type=float, nargs="+", default=[0.3, 0.8, 1.5])
    args = parser.parse_args()
    this = Path(__file__).resolve().parents[1]
    same = 0
    total = {"other": 0.0, "this": 0.0}
    for image in args.images:
        for target in args.targets:
            a, b = run(args.other.resolve(), image, target), run(this, image, target)
            same += a["quality"] == b["quality"]
            total["other"] += a["seconds"]
            total["this"] += b["seconds"]
            print(f"{image.name[:40]:40s} {target:4g} bpp  quality {a['quality']:.4f} / {b['quality']:.4f}  "
                  f"{a['seconds']:6.1f} / {b['seconds']:6.1f} s  tile codings {a['full']:.0f} / {b['full']:.0f} "
                  f"(+ {b['estimates']:.0f} estimates)", flush=True)
    cases = len(args.images) * len(args.targets)
    print(f"versions: other {a['version']}, this {b['version']}; the same quality in {same} of {cases} cases; "
          f"time ratio other / this {total['other'] / total['this']:.2f} ({total['other']:.1f} / {total['this']:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
