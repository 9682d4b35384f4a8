"""Bounded load test of `sarcodec serve`: REQUESTS compress requests, CONCURRENCY at a time, against a server on
127.0.0.1 started here, with the same work done in-process (`sarcodec.compress`, one after another) in the same run
as the reference.

Prints latency percentiles, requests/s of the service and of the in-process reference and their ratio, the
server's RSS before and after (after a warm-up of CONCURRENCY requests), the status codes, and the files left in
the service's temporary folder (there must be none). Traffic goes to 127.0.0.1 only; the loop is bounded in count.

    python benchmarks/serve_load.py [--requests 200] [--concurrency 8] [--input samples/opera/...tif] [--quality 4]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--input", type=Path, default=sorted((ROOT / "samples" / "opera").glob("*.tif"))[0])
    parser.add_argument("--quality", type=float, default=4)
    args = parser.parse_args()
    data = args.input.read_bytes()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="sarcodec-serve-load-") as tmp:
        env = {**os.environ, "SARCODEC_TMPDIR": tmp, "SARCODEC_QUEUE": str(args.concurrency)}
        proc = subprocess.Popen([sys.executable, "-m", "sarcodec", "serve", "--port", str(port)], env=env,
                                stderr=subprocess.DEVNULL)
        try:
            for _ in range(300):
                try:
                    httpx.get(f"{url}/healthz", timeout=1)
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            server = psutil.Process(proc.pid)

            def post(_: int) -> tuple[int, float]:
                t0 = time.perf_counter()
                r = httpx.post(f"{url}/compress", params={"quality": args.quality},
                               files={"file": (args.input.name, data)}, timeout=300)
                return r.status_code, time.perf_counter() - t0

            with ThreadPoolExecutor(args.concurrency) as pool:
                list(pool.map(post, range(args.concurrency)))  # warm-up: model loaded, threads started
                rss_before = server.memory_info().rss
                t0 = time.perf_counter()
                results = list(pool.map(post, range(args.requests)))
                wall = time.perf_counter() - t0
            time.sleep(1.0)
            rss_after = server.memory_info().rss
            left = [p for p in Path(tmp).rglob("*") if p.is_file()]
        finally:
            proc.terminate()
            proc.wait(30)
    from sarcodec.codec.api import compress

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "x.sarc"
        compress(args.input, out, quality=args.quality, device="cpu", overwrite=True)  # warm-up
        t0 = time.perf_counter()
        for _ in range(args.requests):
            compress(args.input, out, quality=args.quality, device="cpu", overwrite=True)
        local = time.perf_counter() - t0
    latencies = np.array([s for _, s in results]) * 1000
    codes = Counter(c for c, _ in results)
    p50, p90, p99 = np.percentile(latencies, [50, 90, 99])
    print(f"{args.requests} requests, {args.concurrency} concurrent, compress of {args.input.name} "
          f"({len(data)} bytes) at quality {args.quality:g}; status codes {dict(codes)}")
    print(f"latency ms: p50 {p50:.0f}  p90 {p90:.0f}  p99 {p99:.0f}  max {latencies.max():.0f}")
    print(f"service: {args.requests / wall:.1f} requests/s; in-process sarcodec.compress, one after another: "
          f"{args.requests / local:.1f} /s; ratio service/in-process {local / wall:.3f}")
    print(f"server RSS after warm-up {rss_before / 2**20:.0f} MiB, after the run {rss_after / 2**20:.0f} MiB "
          f"(+{(rss_after - rss_before) / 2**20:.1f} MiB); files left in its temporary folder: {len(left)}")
    return 0 if codes == Counter({200: args.requests}) and not left else 1


if __name__ == "__main__":
    raise SystemExit(main())
