"""Run every benchmark and write the figures into docs/performance.md (`make bench`).

Each benchmark is its own script (see benchmarks/README.md); this runs them in
sequence, each with ``--write-doc``, and stops at the first failure.  Run on an
otherwise idle machine.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RUNS = [
    ["bench_parse.py", "--runs", "7", "--write-doc"],
    ["bench_ims.py", "all", "--write-doc"],
    ["bench_echo_sipp.py", "--write-doc"],
    ["bench_ps.py", "all", "--write-doc"],
]


def main() -> int:
    for args in RUNS:
        script = HERE / args[0]
        if not script.exists():
            print(f"skipping {args[0]} (not present)")
            continue
        print(f"== {' '.join(args)}", flush=True)
        code = subprocess.call([sys.executable, str(script), *args[1:]])
        if code != 0:
            print(f"{args[0]} failed with exit code {code}")
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
