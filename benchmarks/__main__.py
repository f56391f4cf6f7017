"""`make bench`: run every benchmark module and print one ratio per line.

Each ratio is measured within one run of one process, so machine speed cancels out of it.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time

import benchmarks


def main() -> int:
    names = sorted(m.name for m in pkgutil.iter_modules(benchmarks.__path__) if m.name.startswith("bench_"))
    only = sys.argv[1:]
    for name in names:
        if only and name not in only:
            continue
        print(f"== {name}", flush=True)
        t0 = time.perf_counter()
        importlib.import_module(f"benchmarks.{name}").main()
        print(f"   ({time.perf_counter() - t0:.1f} s)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
