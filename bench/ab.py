"""Paired A/B timing of one oci-tools command against two source trees.

    bench/ab.py [--runs N] A_SRC B_SRC -- ARGV... (``{src}``, ``{tag}``, ``{i}``
    in ARGV are replaced by the source tree, its label "A"/"B" and the round)

On a shared machine a single wall time says little: the rounds alternate A, B,
B, A, ... (so a slow stretch of the machine taxes both), each command runs as
its own process with ``PYTHONPATH=<src>`` (start oci-tools
as ``python -S -m oci_tools``), and the report gives the medians of
wall time and of the user+sys CPU of the process and its children (from
``wait4``'s rusage, which the load of other jobs does not inflate the way it
inflates wall time).  ``--setup`` runs a shell command before every timed run
(not timed), e.g. to remove the previous output.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import sysconfig
import time


def run(argv: list[str], src: str) -> tuple[float, float]:
    """Wall seconds and user+sys CPU seconds of one run of ``argv``."""
    # ``python -S`` skips site (and so the editable install's import hook,
    # which would win over PYTHONPATH); the dependencies come from here.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([src, sysconfig.get_paths()["purelib"]]))
    start = time.perf_counter()
    # cwd "/": the current directory must not shadow the tree under test.
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, cwd="/")
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"failed ({status}): {' '.join(argv)}")
    return wall, usage.ru_utime + usage.ru_stime


def main() -> int:
    """Parse arguments, alternate the runs, print the medians."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--setup", default="")
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("argv", nargs=argparse.REMAINDER)
    ns = p.parse_args()
    argv = ns.argv[1:] if ns.argv[:1] == ["--"] else ns.argv
    srcs = {"A": ns.a, "B": ns.b}
    res: dict[str, list[tuple[float, float]]] = {"A": [], "B": []}
    for i in range(ns.runs):
        for tag in ("A", "B") if i % 2 == 0 else ("B", "A"):
            fill = {"src": srcs[tag], "tag": tag, "i": str(i)}
            if ns.setup:
                subprocess.run(["sh", "-c", ns.setup.format(**fill)], check=True)
            subprocess.run(["sync"], check=True)
            res[tag].append(run([a.format(**fill) for a in argv], srcs[tag]))
    for tag in ("A", "B"):
        walls = [w for w, _ in res[tag]]
        cpus = [c for _, c in res[tag]]
        print(
            f"{tag} {srcs[tag]}: wall median {statistics.median(walls):.2f} s "
            f"(min {min(walls):.2f}), cpu median {statistics.median(cpus):.2f} s "
            f"(min {min(cpus):.2f}); walls {' '.join(f'{w:.2f}' for w in walls)}"
        )
    a = statistics.median(w for w, _ in res["A"])
    b = statistics.median(w for w, _ in res["B"])
    print(f"B/A wall {b / a:.2f}; load {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
