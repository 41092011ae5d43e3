"""Fuzz the registry client's HTTP header parsers: ``WWW-Authenticate``
challenges, ``Link: <...>; rel="next"`` pagination and ``Content-Range``.
Each gets any text (a registry is a remote peer: its headers are hostile
input) and must return a value, never raise; the regexes must stay linear
(a slow input is a libFuzzer timeout, counted as a crash)."""

from __future__ import annotations

import os
import sys

sys.path[:0] = [os.path.dirname(__file__)]

from harness import instrumented, main  # noqa: E402

with instrumented():
    from oci_tools.registry.auth import Challenge, parse_challenge
    from oci_tools.registry.remote import _content_range_start, _next_link


def one_input(data: bytes) -> None:
    """Every header parser on ``data`` (latin-1, as HTTP headers decode)."""
    text = data.decode("latin-1")
    ch = parse_challenge(text)
    assert ch is None or (isinstance(ch, Challenge) and ch.scheme == ch.scheme.lower()), ch
    link = _next_link(text)
    assert link is None or isinstance(link, str), link
    assert isinstance(_content_range_start(text), int)


def seeds() -> list[bytes]:
    """Headers as registries send them."""
    return [
        b'Bearer realm="https://auth.example/token",service="registry.example",'
        b'scope="repository:a/b:pull"',
        b'Basic realm="Registry Realm"',
        b'Bearer realm="x\\"y", error="insufficient_scope"',
        b'</v2/_catalog?last=b&n=100>; rel="next"',
        b"<https://r.example/v2/x/tags/list?n=2&last=t>; rel=next",
        b"bytes 0-1023/4096",
        b"bytes 10-20/*",
    ]


if __name__ == "__main__":
    main("headers", one_input, seeds())
