"""The fuzzing harness shared by tests/fuzz/fuzz_*.py.

Each fuzzer module defines ``one_input(data: bytes)`` and a seed list and
calls :func:`main`.  The rules every fuzzer enforces:

- only exceptions from ``oci_tools.errors`` (plus what a fuzzer lists as a
  documented contract) may escape the target; anything else is a *crash*,
  saved with its traceback as ``crash-<sha1>`` (+ ``.txt``) in the artifacts
  directory, and fuzzing goes on so one run counts every distinct crash;
- the process runs inside a temporary work directory (``cwd`` and ``TMPDIR``),
  the only place a target may write (fuzz_tar.py checks a canary beside it);
- per input, time is bounded (``FUZZ_INPUT_TIMEOUT`` seconds, default 10: by
  libFuzzer's ``-timeout`` under atheris, else by an interval timer, with
  ``faulthandler`` as the backstop for a hang inside C code) and memory by
  ``RLIMIT_AS`` (``FUZZ_MEMORY_MB``, default 3072): a timeout or a
  ``MemoryError`` is a crash too.  A fuzzer killed that way prints no
  summary line; tests/fuzz/run.py counts it as a crash.

With atheris installed the inputs are coverage-guided (libFuzzer); without
it, a plain mutation loop over the seeds stands in (random byte flips,
insertions, deletions and splices), and the first line on stderr says so.

When the time is up the fuzzer prints ``fuzz NAME: N runs, K crashes`` and
exits 1 when K > 0.  ``--replay FILE...`` runs saved inputs once each (the
regression check).
"""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import hashlib
import os
import random
import resource
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from types import FrameType

from oci_tools.errors import OCIToolsError

try:
    if os.environ.get("FUZZ_NO_ATHERIS") == "1":  # force the fallback loop
        raise ImportError("FUZZ_NO_ATHERIS=1")
    import atheris

    HAVE_ATHERIS = True
except ImportError:  # pragma: no cover - atheris is a dev dependency
    atheris = None
    HAVE_ATHERIS = False

Target = Callable[[bytes], None]


@contextlib.contextmanager
def instrumented() -> Iterator[None]:
    """Import the code under test inside this block so atheris sees its coverage."""
    # Not under pytest (tests/test_fuzz_regressions.py replays the saved
    # inputs in-process, where the library is imported already).
    if HAVE_ATHERIS and "pytest" not in sys.modules:
        with atheris.instrument_imports(include=["oci_tools"]):
            yield
    else:
        yield


def _on_alarm(_sig: int, _frame: FrameType | None) -> None:
    raise TimeoutError("input took longer than FUZZ_INPUT_TIMEOUT")


class _Run:
    def __init__(
        self,
        name: str,
        target: Target,
        allowed: tuple[type[BaseException], ...],
        artifacts: str,
        seconds: float,
    ) -> None:
        self.name = name
        self.target = target
        self.allowed = allowed
        self.artifacts = artifacts
        self.deadline = time.monotonic() + seconds
        self.runs = 0
        self.crashes: set[str] = set()
        self.input_timeout = float(os.environ.get("FUZZ_INPUT_TIMEOUT", "10"))
        self.mode = "atheris" if HAVE_ATHERIS else "mutation loop, atheris missing"
        self.work = ""

    def one(self, data: bytes) -> None:
        if time.monotonic() > self.deadline:
            self.finish()
        self.runs += 1
        soft = not HAVE_ATHERIS  # libFuzzer has its own timer on SIGALRM
        if soft:
            signal.setitimer(signal.ITIMER_REAL, self.input_timeout)
            faulthandler.dump_traceback_later(2 * self.input_timeout, exit=True)
        try:
            self.target(data)
        except self.allowed:
            pass
        except Exception as e:  # everything else is a bug in the library
            self.crash(data, e)
        finally:
            if soft:
                signal.setitimer(signal.ITIMER_REAL, 0)
                faulthandler.cancel_dump_traceback_later()

    def crash(self, data: bytes, e: BaseException) -> None:
        # One crash per distinct place it was raised (type + innermost frame).
        tb = traceback.extract_tb(e.__traceback__)
        where = f"{type(e).__name__}@{tb[-1].filename}:{tb[-1].lineno}" if tb else type(e).__name__
        if where in self.crashes:
            return
        self.crashes.add(where)
        os.makedirs(self.artifacts, exist_ok=True)
        base = os.path.join(self.artifacts, "crash-" + hashlib.sha1(data).hexdigest())
        with open(base, "wb") as f:
            f.write(data)
        with open(base + ".txt", "w") as f:
            f.write(f"{self.name}: {where}\n")
            f.write("".join(traceback.format_exception(e)))
        print(f"fuzz {self.name}: crash {where} -> {base}", file=sys.stderr, flush=True)

    def finish(self) -> None:
        print(f"fuzz {self.name}: {self.runs} runs, {len(self.crashes)} crashes", flush=True)
        shutil.rmtree(self.work, ignore_errors=True)
        os._exit(1 if self.crashes else 0)  # libFuzzer would not return


def _mutate(rng: random.Random, data: bytes, pool: Sequence[bytes]) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        op = rng.randrange(5)
        pos = rng.randrange(len(b) + 1)
        if op == 0 and b:
            b[min(pos, len(b) - 1)] = rng.randrange(256)
        elif op == 1:
            b[pos:pos] = rng.randbytes(rng.randint(1, 16))
        elif op == 2 and b:
            del b[pos : pos + rng.randint(1, 64)]
        elif op == 3 and pool:
            other = rng.choice(pool)
            start = rng.randrange(len(other) + 1)
            b[pos:pos] = other[start : start + rng.randint(1, 512)]
        elif b:
            b[min(pos, len(b) - 1)] = rng.choice([0, 0x7F, 0x80, 0xFF, 0x30, 0x37, 0x20])
    return bytes(b)


def main(
    name: str,
    target: Target,
    seeds: Sequence[bytes],
    *,
    allowed: tuple[type[BaseException], ...] = (OCIToolsError,),
) -> None:
    """Fuzz ``target`` (see the module docstring); never returns."""
    ap = argparse.ArgumentParser(prog=f"fuzz_{name}")
    ap.add_argument("--seconds", type=float, default=float(os.environ.get("FUZZ_SECONDS", "60")))
    ap.add_argument("--artifacts", default=os.environ.get("FUZZ_ARTIFACTS", "fuzz-artifacts"))
    ap.add_argument("--replay", nargs="*", default=None)
    args = ap.parse_args()
    artifacts = os.path.abspath(os.path.join(args.artifacts, name))
    work = tempfile.mkdtemp(prefix=f"fuzz-{name}-")
    os.chdir(work)
    os.environ["TMPDIR"] = work
    tempfile.tempdir = work
    mb = int(os.environ.get("FUZZ_MEMORY_MB", "3072"))
    resource.setrlimit(resource.RLIMIT_AS, (mb << 20, mb << 20))
    if not HAVE_ATHERIS:
        signal.signal(signal.SIGALRM, _on_alarm)
    run = _Run(name, target, allowed, artifacts, args.seconds)
    run.work = work
    if args.replay is not None:
        for path in args.replay:
            with open(path, "rb") as f:
                run.one(f.read())
        run.finish()
    print(f"fuzz {name}: {args.seconds:g}s, {run.mode}, work dir {work}", file=sys.stderr)
    for s in seeds:
        run.one(s)
    if HAVE_ATHERIS:
        corpus = os.path.join(work, "corpus")
        os.makedirs(corpus)
        for i, s in enumerate(seeds):
            with open(os.path.join(corpus, f"seed-{i}"), "wb") as f:
                f.write(s)
        argv = [
            sys.argv[0],
            corpus,
            f"-max_total_time={int(args.seconds) + 30}",
            f"-timeout={max(1, round(run.input_timeout))}",
            f"-rss_limit_mb={mb}",
            f"-artifact_prefix={artifacts}/libfuzzer-",
            "-print_final_stats=0",
        ]
        os.makedirs(artifacts, exist_ok=True)
        atheris.Setup(argv, run.one)
        atheris.Fuzz()
    rng = random.Random(os.environ.get("FUZZ_SEED", "0"))
    pool = list(seeds) or [b""]
    while True:
        run.one(_mutate(rng, rng.choice(pool), pool))


def seed_files(*patterns: str, limit: int = 200) -> list[bytes]:
    """Seed inputs from the repository's testdata (glob patterns relative to it)."""
    import glob

    root = os.path.join(os.path.dirname(__file__), "..", "..", "testdata")
    out: list[bytes] = []
    for pat in patterns:
        for p in sorted(glob.glob(os.path.join(root, pat), recursive=True)):
            if os.path.isfile(p) and len(out) < limit:
                with open(p, "rb") as f:
                    out.append(f.read(1 << 20))
    return out
