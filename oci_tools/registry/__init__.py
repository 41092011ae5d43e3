"""Registry client over the OCI distribution spec (pull, push, copy, login).

Modules, lowest first: :mod:`reference` (names, Docker normalisation),
:mod:`auth` (credential files and helpers, challenges), :mod:`transport`
(HTTP on urllib3: scheme, auth, redirects, retries), :mod:`remote`
(manifests, blobs, uploads, tags of one repository), :mod:`transfer` (whole
images: pull, push, registry → registry copy, inspect) and :mod:`copy`
(skopeo-style transports ``docker://``, ``oci:``, ``oci-archive:``).
"""

# First: urllib3 without importlib.metadata (see _http).
from oci_tools.registry import _http  # noqa: F401
from oci_tools.registry.auth import Credential, parse_creds
from oci_tools.registry.reference import RemoteRef, is_remote, parse_reference
from oci_tools.registry.transport import Options, RetryPolicy

__all__ = [
    "Credential",
    "Options",
    "RemoteRef",
    "RetryPolicy",
    "is_remote",
    "parse_creds",
    "parse_reference",
]
