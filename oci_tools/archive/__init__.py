"""Image archives: one tar file that docker, podman, containerd and skopeo load.

Two formats are written by :func:`export_image`:

``oci-archive`` (the default)
    The "hybrid" form ``docker save`` writes since Docker 25: an OCI image
    layout (``oci-layout``, ``index.json``, ``blobs/<alg>/<hex>``) that also
    carries a Docker ``manifest.json`` whose ``Config`` and ``Layers`` are paths
    of those same blobs.  OCI readers (skopeo ``oci-archive:``, containerd,
    podman) use the layout; Docker-style readers use ``manifest.json``.  Blobs
    are written byte for byte, so the manifest digest is preserved.
``docker-archive``
    The classic ``docker save`` form: the config as ``<config-hex>.json``, each
    layer *uncompressed* as ``<diffid-hex>/layer.tar`` (decompressed while
    streaming and checked against the config's diff_id), ``manifest.json`` and
    ``repositories``.  The legacy v1 ``json``/``VERSION`` files are not
    written: every loader since Docker 1.10 reads ``manifest.json`` only.

Naming (what ``RepoTags``, ``repositories`` and ``io.containerd.image.name``
say; ``org.opencontainers.image.ref.name`` always holds the layout's ref
unchanged, so an export re-imports under the same ref):

* a ref that already is a Docker-style name (it contains ``/`` or ``:``, e.g.
  ``example.com/foo:v3`` or ``foo:v3``) is used as that name;
* a plain ref is a tag of a repository named after the layout directory:
  ref ``app`` of layout ``images/demo`` is ``localhost/demo:app``;
* a name without a registry gets ``localhost/`` (podman's convention for
  local images; never ``docker.io``, which would claim a Docker Hub origin).

``export_image(..., name=...)`` overrides the derived name.

Signatures (oci-archive only): ``export_image(..., signatures=...)`` is
asked for the signature image of the exported manifest; its blobs go into
``blobs/`` and its manifest digest into the :data:`SIGNATURES` annotation of
the image's ``index.json`` entry -- not as a second entry, because skopeo's
``oci-archive:FILE`` (no ref) and Docker-style loaders expect exactly one
image.  ``import_archive(..., signatures=...)`` checks the carried image is
complete and hands it over after the import.  How signature images are
named and merged is the sign package's business (oci_tools.sign.cosign),
not this module's.

:func:`import_archive` reads any of those forms, the classic archives written
by ``docker save``, ``podman save`` and ``skopeo copy ... docker-archive:``,
and plain tars of an OCI layout, from a file or a non-seekable stream (also
gzip/bzip2/xz-compressed tars).  Every regular member is streamed into the
layout's blob store as it goes by (content addressed, so nothing needs to be
held back); ``index.json``/``manifest.json`` decide at the end which blobs
are what.  Docker v2.2 images are converted to OCI: the config keeps its
exact bytes (so its digest, Docker's image id, is unchanged) under the OCI
config media type, layers are re-typed by their actual compression (sniffed,
not guessed from names), and a new OCI manifest is written.  All verification
happens before the single ``index.json`` update at the end: on any failure
``index.json`` is untouched and the blobs written so far are garbage for gc.
"""

from oci_tools.archive.common import FORMATS, SIGNATURES, image_name, parse_name
from oci_tools.archive.export import export_image
from oci_tools.archive.load import import_archive

__all__ = [
    "FORMATS",
    "SIGNATURES",
    "export_image",
    "image_name",
    "import_archive",
    "parse_name",
]
