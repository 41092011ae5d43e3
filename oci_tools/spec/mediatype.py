"""Media type names (OCI and Docker v2.2) and how they relate.

Pure constants and lookups: no I/O, no imports from the rest of the package.
"""

from __future__ import annotations

OCI_LAYOUT_HEADER = "application/vnd.oci.layout.header.v1+json"
OCI_DESCRIPTOR = "application/vnd.oci.descriptor.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_LAYER_ND_TAR = "application/vnd.oci.image.layer.nondistributable.v1.tar"
OCI_LAYER_ND_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
OCI_LAYER_ND_ZSTD = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"

DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER_TAR = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_FOREIGN_LAYER_GZIP = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
DOCKER_LAYER_ZSTD = "application/vnd.docker.image.rootfs.diff.tar.zstd"

#: Documents that are image indexes (OCI index or Docker manifest list).
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
#: Documents that are image manifests.
MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
#: Image configuration documents.
CONFIG_TYPES = frozenset({OCI_CONFIG, DOCKER_CONFIG})

#: Layer media type -> codec name ("none", "gzip", "zstd").
LAYER_CODECS: dict[str, str] = {
    OCI_LAYER_TAR: "none",
    OCI_LAYER_GZIP: "gzip",
    OCI_LAYER_ZSTD: "zstd",
    OCI_LAYER_ND_TAR: "none",
    OCI_LAYER_ND_GZIP: "gzip",
    OCI_LAYER_ND_ZSTD: "zstd",
    DOCKER_LAYER_TAR: "none",
    DOCKER_LAYER_GZIP: "gzip",
    DOCKER_FOREIGN_LAYER_GZIP: "gzip",
    DOCKER_LAYER_ZSTD: "zstd",
}

#: Codec name -> the OCI layer media type we write.
OCI_LAYER_FOR_CODEC: dict[str, str] = {
    "none": OCI_LAYER_TAR,
    "gzip": OCI_LAYER_GZIP,
    "zstd": OCI_LAYER_ZSTD,
}
