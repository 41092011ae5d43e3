"""Shared pytest configuration.

In CI (OCI_TOOLS_CI=1) a skipped test is reported as a failure: CI installs
every tool and runs as root, so a skip there means the suite lost coverage.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

IN_CI = os.environ.get("OCI_TOOLS_CI") == "1"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, which must run everything: {reason}"


# Hypothesis budget.  The property tests (tests/test_properties_*.py) run in
# every `make test` with the "ci" profile: few examples each, so the whole set
# stays well under a minute.  FUZZ_LONG=1 selects the "long" profile (nightly
# sized).  No deadline: the examples touch the disk and the machine is shared,
# and tests must not assert timings.
FUZZ_LONG = os.environ.get("FUZZ_LONG") == "1"

try:
    from hypothesis import HealthCheck, settings
except ImportError:  # pragma: no cover - hypothesis is a dev dependency
    pass
else:
    _common = {
        "deadline": None,
        "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
        "print_blob": True,
    }
    # In CI (OCI_TOOLS_CI=1) the examples are derandomized, so a merge never
    # fails on a draw nobody saw before; locally each run draws new ones.
    settings.register_profile("ci", max_examples=20, derandomize=IN_CI, **_common)
    settings.register_profile("long", max_examples=500, **_common)
    settings.load_profile("long" if FUZZ_LONG else "ci")
