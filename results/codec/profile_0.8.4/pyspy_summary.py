"""Summarize a py-spy raw profile (``py-spy record -r 200 -t -f raw -o FILE -- python -m sarcodec ...``): the share
of samples per thread, per function (inclusive: a function counted once per sample it is on the stack of) and per
innermost frame.

    python results/codec/profile_0.8.4/pyspy_summary.py FILE [--top 45]
"""

from __future__ import annotations

import argparse
import collections


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("raw")
    parser.add_argument("--top", type=int, default=45)
    args = parser.parse_args()
    total = 0
    threads: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    leaves: collections.Counter[str] = collections.Counter()
    with open(args.raw) as lines:
        for line in lines:
            stack, count = line.rsplit(" ", 1)
            n = int(count)
            total += n
            frames = stack.split(";")
            threads[frames[0][:40]] += n
            leaves[frames[-1][:110]] += n
            for name in {frame.split(" (")[0] for frame in frames}:
                inclusive[name] += n
    print(f"{total} samples")
    for title, counter, top in (("threads", threads, 6), ("inclusive", inclusive, args.top),
                                ("innermost", leaves, 25)):
        print(f"--- {title}")
        for name, n in counter.most_common(top):
            print(f"{n / total:6.1%} {name}")


if __name__ == "__main__":
    main()
