"""``make fuzz``: run every fuzzer (tests/fuzz/fuzz_*.py) for FUZZ_SECONDS
(default 60) each, one after the other, and print one line per fuzzer::

    fuzz NAME: N runs, K crashes

Exits 1 when any fuzzer crashed.  A fuzzer that died without its summary line
(a libFuzzer timeout or out-of-memory kill, a hang caught by faulthandler)
counts as one crash.  Crashing inputs land in FUZZ_ARTIFACTS (default
``fuzz-artifacts/``), ``<fuzzer>/crash-<sha1>`` with a ``.txt`` traceback.
``python tests/fuzz/run.py tar json`` runs only those fuzzers.
"""

from __future__ import annotations

import glob
import os
import re
import subprocess
import sys


def main(argv: list[str]) -> int:
    """Run the fuzzers named in ``argv`` (all when empty); 1 on any crash."""
    here = os.path.dirname(os.path.abspath(__file__))
    seconds = float(os.environ.get("FUZZ_SECONDS", "60"))
    artifacts = os.path.abspath(os.environ.get("FUZZ_ARTIFACTS", "fuzz-artifacts"))
    fuzzers = sorted(
        os.path.basename(p)[len("fuzz_") : -len(".py")]
        for p in glob.glob(os.path.join(here, "fuzz_*.py"))
    )
    if argv:
        unknown = sorted(set(argv) - set(fuzzers))
        if unknown:
            print(f"unknown fuzzers {unknown}; there are {fuzzers}", file=sys.stderr)
            return 2
        fuzzers = [f for f in fuzzers if f in argv]
    failed = False
    for name in fuzzers:
        cmd = [sys.executable, os.path.join(here, f"fuzz_{name}.py")]
        cmd += ["--seconds", str(seconds), "--artifacts", artifacts]
        try:
            p = subprocess.run(
                cmd, capture_output=True, text=True, errors="replace", timeout=seconds + 120
            )
            out, code = p.stdout, p.returncode
        except subprocess.TimeoutExpired as e:
            out, code = str(e.stdout or ""), -1
        m = re.search(rf"^fuzz {name}: (\d+) runs, (\d+) crashes$", out, re.M)
        if m:
            print(m.group(0), flush=True)
            failed |= int(m.group(2)) > 0 or code != 0
        else:
            print(f"fuzz {name}: ? runs, 1 crashes", flush=True)
            tail = (p.stderr if "p" in locals() else "")[-2000:]
            print(f"  died with exit code {code}; artifacts in {artifacts}/{name}\n{tail}")
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
