"""Loads urllib3 without ``importlib.metadata`` (imported first by the package).

urllib3 2.x imports ``importlib.metadata`` at start-up only to bind its
``version`` function, which it calls when asked to switch to HTTP/2 (which
oci-tools never asks); loading that module (with zipfile, csv, email and
importlib.resources behind it) is 4-6 ms of every registry command.  While
urllib3 is imported, ``importlib.metadata`` is a stand-in module whose
``version`` loads the real one on first call, so urllib3 behaves exactly as
before; the stand-in leaves ``sys.modules`` as soon as urllib3 is loaded, and
nothing else ever sees it.  When urllib3 or ``importlib.metadata`` is loaded
already there is nothing to save and nothing is done.
"""

from __future__ import annotations

import sys
import types


def _real_version(distribution_name: str) -> str:
    """``importlib.metadata.version``, loaded on first call."""
    from importlib.metadata import version

    return version(distribution_name)


def _load_urllib3() -> None:
    if "urllib3" in sys.modules or "importlib.metadata" in sys.modules:
        return
    stand_in = types.ModuleType("importlib.metadata")
    stand_in.version = _real_version  # type: ignore[attr-defined]
    sys.modules["importlib.metadata"] = stand_in
    try:
        import urllib3  # noqa: F401
    finally:
        if sys.modules.get("importlib.metadata") is stand_in:
            del sys.modules["importlib.metadata"]


_load_urllib3()
