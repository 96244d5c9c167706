"""Run a Python module or code like ``python -m``/``-c`` and report this process's peak memory.

The peak is VmHWM from /proc/self/status: the high-water mark of this process's own
memory since exec (ru_maxrss would also count the parent's pages inherited at fork).

    python bench/peak.py -m mailer contacts import FILE
    python bench/peak.py -c "print(1)" ARG...
"""

from __future__ import annotations

import atexit
import runpy
import sys
from pathlib import Path


def _report() -> None:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            kib = int(line.split()[1])
            print(f"\npeak_rss_mb={kib / 1024:.1f}", file=sys.stderr, flush=True)


def main() -> None:
    mode, target, *rest = sys.argv[1:]
    atexit.register(_report)
    if mode == "-m":
        sys.argv = [target, *rest]
        runpy.run_module(target, run_name="__main__", alter_sys=True)
    elif mode == "-c":
        sys.argv = ["-c", *rest]
        exec(compile(target, "<bench>", "exec"), {"__name__": "__main__"})  # noqa: S102
    else:
        raise SystemExit("usage: peak.py -m MODULE [ARGS] | -c CODE [ARGS]")


if __name__ == "__main__":
    main()
