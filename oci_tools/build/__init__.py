"""Build an image from a Dockerfile, the way Docker's classic builder does.

The package, from the bottom up:

* BuildError (``file:line: reason``) and RunFailedError live in :mod:`oci_tools.errors`;
* :mod:`~oci_tools.build.words` — quotes, escapes and ``$VAR`` substitution;
* :mod:`~oci_tools.build.dockerfile` — the Dockerfile parser;
* :mod:`~oci_tools.build.dockerignore` — ``.dockerignore`` patterns;
* :mod:`~oci_tools.build.context` — the build context, COPY/ADD sources and
  their content hashes;
* :mod:`~oci_tools.build.sourcehash` — Docker's ``file:``/``dir:``/``multi:``
  hashes of those sources, as the history rows show them;
* :mod:`~oci_tools.build.cache` — the step cache and its keys;
* :mod:`~oci_tools.build.executor` — running a RUN step with runc or chroot;
* :mod:`~oci_tools.build.workspace` — the scratch directory and the one working bundle;
* :mod:`~oci_tools.build.builder` — the builder: one step per instruction,
  through an explicit dispatch table, and :func:`build`.
"""

from __future__ import annotations

from oci_tools.build.builder import BuildOptions, BuildResult, build, parse_build_args
from oci_tools.build.cache import CACHE_KEY_ANNOTATION, CACHE_ROOT
from oci_tools.build.dockerfile import SUPPORTED, Dockerfile, Instruction, parse_dockerfile
from oci_tools.build.dockerignore import DockerIgnore
from oci_tools.build.words import Lexer
from oci_tools.errors import BuildError, RunFailedError

__all__ = [
    "CACHE_KEY_ANNOTATION",
    "CACHE_ROOT",
    "SUPPORTED",
    "BuildError",
    "BuildOptions",
    "BuildResult",
    "DockerIgnore",
    "Dockerfile",
    "Instruction",
    "Lexer",
    "RunFailedError",
    "build",
    "parse_build_args",
    "parse_dockerfile",
]
