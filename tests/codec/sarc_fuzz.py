"""A structure-aware fuzzer of the ``.sarc`` decoder.

It damages what lies *behind* the checksum: the header JSON (field by field, nested fields too), the validity
masks (bit flips, truncation, deflate bombs, wrong sizes), the tile records (tags, word counts, payload bits,
truncation, swaps, empty records), the side information of format-2, 5 and 6 tiles, and the record counts; then it
rebuilds the file with a correct CRC so that the header parser, the mask decoder, the tile records and the entropy
decoder are all reached. Every case is decoded in a child process under a memory cap (``RLIMIT_AS``) and a time
cap; it must end in a ``CorruptFileError``, an ``IncompatibleModelError`` (a header naming weights this
installation does not have) or a valid decode, never another exception, a crash, a hang or a memory blow-up.

``python -m tests.codec.sarc_fuzz --cases 5000`` prints the outcome counts (the test suite runs 600 cases, and
5000 in a test marked slow).
"""

from __future__ import annotations

import argparse
import json
import lzma
import random
import subprocess
import sys
import tempfile
import zlib
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[2]
GOLDEN_V1 = Path(__file__).parent / "golden" / "v1_opera_72x90_q3.sarc"
GOLDEN_V2 = Path(__file__).parent / "golden" / "v2_opera_72x90_q3.sarc"
GOLDEN_V5 = Path(__file__).parent / "golden" / "v5_speckle_opera_72x90_q3.sarc"
#: Address-space cap of the decoding child (PyTorch alone maps ~2-3 GB of virtual memory).
MEMORY_CAP = 6 << 30
CASE_SECONDS = 30
OK_OUTCOMES = ("corrupt", "incompatible", "decoded")

Parsed = tuple[int, dict[str, Any], list[tuple[bytes, list[bytes]]]]


def base_files(folder: Path) -> list[Path]:
    """Four valid files to damage: a format-6 file (2 x 3 tiles, a NaN corner, point targets, an uncoded tile)
    and the committed format-1, format-2 and format-5 (speckle maps) golden files."""
    import sarcodec
    from tests.conftest import speckle_intensity

    img = speckle_intensity((40, 60), looks=1, seed=21)
    img[25:, 40:] = np.nan  # the last tile holds no valid pixel
    img[5, 7] *= 1e4
    path = folder / "v6.sarc"
    sarcodec.compress(img, path, quality=3, tile_size=20, overlap=4, overwrite=True)
    return [path, GOLDEN_V1, GOLDEN_V2, GOLDEN_V5]


def parse(path: Path) -> Parsed:
    from sarcodec.io.sarc import SarcReader

    with SarcReader(path) as reader:
        return reader.version, dict(reader.header.fields), [(m, list(p)) for m, p in reader.bands()]


def write(path: Path, parsed: Parsed) -> None:
    """Rebuild a file from (version, header, bands) with a correct checksum (``json`` allows NaN/inf here)."""
    import struct

    from sarcodec.io.sarc import HEADER_DICTIONARIES, MAGIC

    version, header, bands = parsed
    deflate = zlib.compressobj(9, zdict=HEADER_DICTIONARIES.get(version, HEADER_DICTIONARIES[2]))
    text = deflate.compress(json.dumps(header).encode()) + deflate.flush()
    body = bytearray(MAGIC + struct.pack("<HI", version, len(text)) + text)
    for mask, payloads in bands:
        body += struct.pack("<I", len(mask)) + mask
        for p in payloads:
            body += struct.pack("<I", len(p)) + p
    body += struct.pack("<I", zlib.crc32(body))
    path.write_bytes(bytes(body))


_ODD_VALUES: list[Any] = [None, -1, 0, 1, 2, 3, 15, 16, 17, 2**31, 2**63, -(2**63), 1e308, -1e308, 0.5, "nan", "inf",
                          "-inf", "", "x", [], {}, [1, 2], True, 1e-300, 4096, 2048, 65536, 1 << 20, 7, 255]


def _flip_bits(data: bytes, rng: random.Random, n: int = 3) -> bytes:
    if not data:
        return bytes([rng.randrange(256)])
    buf = bytearray(data)
    for _ in range(n):
        i = rng.randrange(len(buf))
        buf[i] ^= 1 << rng.randrange(8)
    return bytes(buf)


def _header_paths(value: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, sub in value.items():
            out += _header_paths(sub, (*prefix, key))
    return out


def mutate(parsed: Parsed, rng: random.Random) -> tuple[Parsed, str]:
    """One random structural damage; returns the damaged (version, header, bands) and its kind."""
    version, header, bands = parsed
    header = json.loads(json.dumps(header))
    bands = [(m, list(p)) for m, p in bands]
    kind = rng.choice(["header", "header", "mask", "tile", "tile", "tile", "side", "records", "version"])
    if kind == "header":
        path = rng.choice(_header_paths(header))
        node = header
        for key in path[:-1]:
            node = node[key]
        if rng.random() < 0.15:
            node.pop(path[-1], None)
        else:
            node[path[-1]] = rng.choice(_ODD_VALUES)
    elif kind == "mask":
        b = rng.randrange(len(bands))
        mask, payloads = bands[b]
        choice = rng.randrange(5)
        if choice == 0:
            mask = zlib.compress(b"\xff" * rng.choice([10, 1000, 10**6, 10**8 // 8]))  # wrong size or a bomb
        elif choice == 1:
            mask = _flip_bits(mask, rng)
        elif choice == 2:
            mask = mask[: rng.randrange(len(mask) + 1)]
        elif choice == 3:
            mask = zlib.compress(np.packbits(np.random.default_rng(rng.randrange(1 << 30)).random(rng.randrange(1, 4000)) > 0.3).tobytes())
        else:
            mask = b""
        bands[b] = (mask, payloads)
    elif kind in ("tile", "side"):
        b = rng.randrange(len(bands))
        mask, payloads = bands[b]
        t = rng.randrange(len(payloads))
        p = payloads[t]
        if kind == "side" and version >= 2 and p and p[0] == 2 and len(p) > 5:
            n = int.from_bytes(p[1:5], "little")
            side = p[5 + n :]
            junk = lzma.compress(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64))),
                                 format=lzma.FORMAT_RAW, filters=[{"id": lzma.FILTER_LZMA2, "preset": 1}])
            side = rng.choice([_flip_bits(side, rng), side[: rng.randrange(len(side) + 1)], junk, side + b"\x00"])
            p = p[: 5 + n] + side
        else:
            choice = rng.randrange(7)
            if choice == 0:
                p = b""
            elif choice == 1:
                p = bytes([rng.randrange(256)]) + p[1:]
            elif choice == 2 and len(p) >= 5:
                p = p[:1] + rng.randrange(1 << 32).to_bytes(4, "little") + p[5:]
            elif choice == 3:
                p = _flip_bits(p, rng, rng.randrange(1, 8))
            elif choice == 4:
                p = p[: rng.randrange(len(p) + 1)]
            elif choice == 5:
                p = payloads[rng.randrange(len(payloads))] if rng.random() < 0.5 else p + p
            else:
                p = p + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 9)))
        payloads[t] = p
    elif kind == "records":
        b = rng.randrange(len(bands))
        if rng.random() < 0.5 and len(bands) > 1:
            del bands[b]
        elif bands[b][1]:
            bands[b][1].pop(rng.randrange(len(bands[b][1])))
        else:
            bands[b][1].append(b"\x00\x00\x00\x00")
    else:
        version = rng.choice([0, 1, 2, 3, 4, 5, 6, 7, 255])
    return (version, header, bands), kind


def _child() -> None:
    """Decode the files named on stdin, one JSON line of outcome each, under the caps set by the parent."""
    import resource
    import signal

    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))

    def timeout(signum: int, frame: Any) -> None:
        raise TimeoutError

    signal.signal(signal.SIGALRM, timeout)
    import sarcodec
    from sarcodec.errors import CorruptFileError, IncompatibleModelError

    for line in sys.stdin:
        path = line.strip()
        signal.alarm(CASE_SECONDS)
        try:
            sarcodec.decompress(path)
            outcome = "decoded"
        except CorruptFileError:
            outcome = "corrupt"
        except IncompatibleModelError:
            outcome = "incompatible"
        except TimeoutError:
            outcome = "timeout"
        except MemoryError:
            outcome = "memory"
        except Exception as exc:  # noqa: BLE001 (the point is to catch what should not happen)
            outcome = f"other:{type(exc).__name__}:{str(exc)[:80]}"
        finally:
            signal.alarm(0)
        print(json.dumps({"path": path, "outcome": outcome}), flush=True)


def run(cases: int, seed: int = 0, folder: Path | None = None) -> dict[str, Any]:
    """Make ``cases`` damaged files and decode them; returns counts by outcome and by kind of damage."""
    with tempfile.TemporaryDirectory(prefix="sarc-fuzz-") as tmp:
        work = Path(folder or tmp)
        bases = [parse(p) for p in base_files(work)]
        rng = random.Random(seed)
        kinds = {}
        paths = []
        for i in range(cases):
            damaged, kind = mutate(rng.choice(bases), rng)
            path = work / f"case{i:05d}.sarc"
            write(path, damaged)
            kinds[str(path)] = kind
            paths.append(str(path))
        outcomes: dict[str, str] = {}
        pending = list(paths)
        while pending:  # a child that dies (it should not) is restarted after the case it died on
            proc = subprocess.run([sys.executable, "-m", "tests.codec.sarc_fuzz", "--child"], input="\n".join(pending),
                                  capture_output=True, text=True, cwd=REPO, timeout=CASE_SECONDS * len(pending) + 60)
            for line in proc.stdout.splitlines():
                if line.startswith("{"):
                    record = json.loads(line)
                    outcomes[record["path"]] = record["outcome"]
            done = [p for p in pending if p in outcomes]
            if len(done) < len(pending):
                crashed = pending[len(done)]
                outcomes[crashed] = f"crash:{proc.returncode}:{proc.stderr.strip().splitlines()[-1:] }"
            pending = [p for p in pending if p not in outcomes]
    by_outcome = Counter(o.split(":")[0] if o.startswith(OK_OUTCOMES) else o for o in outcomes.values())
    by_kind = Counter(f"{kinds[p]}/{o.split(':')[0]}" for p, o in outcomes.items())
    bad = sorted({o for o in outcomes.values() if o not in OK_OUTCOMES})
    return {"cases": cases, "outcomes": dict(by_outcome), "by_kind": dict(sorted(by_kind.items())), "bad": bad}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child()
        return 0
    result = run(args.cases, args.seed)
    print(json.dumps(result, indent=1))
    return 1 if result["bad"] else 0


if __name__ == "__main__":
    sys.exit(main())
