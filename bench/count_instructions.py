"""Instructions per proxied request, counted by callgrind: a figure no noise moves.

Runs ``bench/micro_engine.py`` under ``valgrind --tool=callgrind`` twice, with ``--requests``
SMALL and LARGE, and prints (total(LARGE) - total(SMALL)) / (LARGE - SMALL): start-up and
imports cancel out. Extra arguments go to micro_engine (``--cc``, ``--metrics``,
``--activator``, ``--batch``: requests a loop pass). Needs valgrind (Debian package
``valgrind``); takes about 30 s.

    python bench/count_instructions.py [--small 2000] [--large 12000] [micro_engine args ...]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def total(requests: int, extra: list[str]) -> int:
    cmd = [
        "valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
        # the interpreter itself, not a wrapper script (pyenv shims are shell scripts)
        os.path.realpath(sys.executable),
        str(HERE / "micro_engine.py"), "--requests", str(requests), "--repeat", "1", *extra,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=True)
    m = re.search(r"Collected : (\d+)", out.stderr)
    if m is None:
        raise SystemExit(f"no callgrind total in the output of {' '.join(cmd)}:\n{out.stderr}")
    return int(m.group(1))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--small", type=int, default=2000)
    p.add_argument("--large", type=int, default=12000)
    a, extra = p.parse_known_args()
    if shutil.which("valgrind") is None:
        print("valgrind not found: apt-get install -y valgrind", file=sys.stderr)
        return 2
    if a.large <= a.small:
        p.error("--large must be greater than --small")
    per = (total(a.large, extra) - total(a.small, extra)) / (a.large - a.small)
    print(f"{' '.join(extra) or 'queue-proxy cc=10'}: {per:,.0f} instructions/request")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
