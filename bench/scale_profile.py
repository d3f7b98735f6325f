"""Where a worker's CPU went: top frames of a `py-spy record --format raw` file (bench/scale.py --py-spy).

    .venv/bin/python bench/scale_profile.py /tmp/scale-profile.0.txt [--top 25]

Prints each frame's inclusive share (samples with the frame anywhere on the stack) and self share (at the top),
frames named `function (file)` with the line dropped and site-packages paths shortened.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

LINE = re.compile(r":\d+\)$")


def frame_name(frame: str) -> str:
    frame = LINE.sub(")", frame.strip())
    return re.sub(r"\(.*?(site-packages|lib/python3\.\d+|wt-\d+)/", "(", frame)


def summarize(path: Path) -> tuple[int, Counter[str], Counter[str], Counter[str]]:
    """Total samples; inclusive, self and per-thread counts."""
    total, inclusive, top, threads = 0, Counter[str](), Counter[str](), Counter[str]()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        parts = stack.split(";")
        frames = [frame_name(f) for f in parts if not f.startswith(("process ", "thread "))]
        n = int(count)
        total += n
        threads[next((p for p in parts if p.startswith("thread ")), "?")] += n
        for frame in set(frames):
            inclusive[frame] += n
        if frames:
            top[frames[-1]] += n
    return total, inclusive, top, threads


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    for path in args.files:
        total, inclusive, top, threads = summarize(path)
        print(f"{path}: {total} samples (active threads only)")
        for title, counts in (("threads", threads), ("inclusive", inclusive), ("self", top)):
            print(f"  {title}:")
            for name, n in counts.most_common(args.top):
                print(f"    {100 * n / max(total, 1):5.1f}%  {name[:150]}")


if __name__ == "__main__":
    main()
