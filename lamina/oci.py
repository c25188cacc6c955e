"""OCI image spec and Docker schema2 value types. No I/O.

Every type is a frozen dataclass with ``from_json`` (accepting OCI and Docker schema2 media
types alike) and ``to_json``. Unknown JSON fields are kept in ``extra`` so that a manifest or
config read from elsewhere re-serialises without loss; for manifests we never re-serialise at
all: the bytes we received are stored as-is so their digest is preserved.
"""

from __future__ import annotations

import json
import os
from lamina._dcache import dataclass, field


from lamina.digest import Digest
from lamina.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:  # names used in annotations only; importing them costs start-up time
    from typing import Any

# media types
OCI_LAYOUT_VERSION = "1.0.0"
MT_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MT_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
MT_OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MT_OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
MT_OCI_LAYER_ND_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
MT_DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MT_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MT_DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
MT_DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
MT_DOCKER_LAYER_FOREIGN = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"

MANIFEST_TYPES = (MT_OCI_MANIFEST, MT_DOCKER_MANIFEST)
INDEX_TYPES = (MT_OCI_INDEX, MT_DOCKER_MANIFEST_LIST)
LAYER_TYPES = (MT_OCI_LAYER, MT_OCI_LAYER_GZIP, MT_OCI_LAYER_ZSTD, MT_OCI_LAYER_ND_GZIP,
               MT_DOCKER_LAYER_GZIP, MT_DOCKER_LAYER_FOREIGN,
               "application/vnd.docker.image.rootfs.diff.tar")

ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
ANNOTATION_IMAGE_NAME = "io.containerd.image.name"


def canonical_json(obj: Any) -> bytes:
    """Compact JSON with sorted keys: what lamina writes for configs and manifests it creates."""
    return json.dumps(obj, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()


def _loads(data: bytes, what: str) -> dict:
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise InvalidArgument(f"{what} is not valid JSON: {e}") from None
    if not isinstance(obj, dict):
        raise InvalidArgument(f"{what} is not a JSON object")
    return obj


@dataclass(frozen=True)
class Platform:
    os: str = "linux"
    architecture: str = "amd64"
    variant: str | None = None

    @classmethod
    def from_json(cls, d: dict) -> "Platform":
        return cls(d.get("os", ""), d.get("architecture", ""), d.get("variant") or None)

    def to_json(self) -> dict:
        out = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            out["variant"] = self.variant
        return out

    def __str__(self) -> str:
        return "/".join(x for x in (self.os, self.architecture, self.variant) if x)


def host_platform() -> Platform:
    m = os.uname().machine
    arch = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386",
            "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}.get(m, m)
    return Platform("linux", arch, "v8" if arch == "arm64" else ("v7" if arch == "arm" else None))


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: Digest
    size: int
    platform: Platform | None = None
    annotations: tuple[tuple[str, str], ...] = ()
    urls: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, d: dict, *, what: str = "descriptor") -> "Descriptor":
        try:
            digest = Digest.parse(d["digest"])
            size = int(d["size"])
        except (KeyError, TypeError, ValueError) as e:
            raise InvalidArgument(f"{what}: missing or invalid field {e}") from None
        if size < 0:
            raise InvalidArgument(f"{what} {digest}: negative size {size}")
        plat = Platform.from_json(d["platform"]) if isinstance(d.get("platform"), dict) else None
        ann = tuple(sorted((d.get("annotations") or {}).items()))
        return cls(d.get("mediaType", ""), digest, size, plat, ann, tuple(d.get("urls") or ()))

    def to_json(self) -> dict:
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": str(self.digest), "size": self.size}
        if self.platform:
            out["platform"] = self.platform.to_json()
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.urls:
            out["urls"] = list(self.urls)
        return out

    def annotation(self, key: str) -> str | None:
        return dict(self.annotations).get(key)


@dataclass(frozen=True)
class Manifest:
    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]
    annotations: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_json(cls, data: bytes, *, what: str = "manifest") -> "Manifest":
        d = _loads(data, what)
        mt = d.get("mediaType") or MT_OCI_MANIFEST
        if mt not in MANIFEST_TYPES:
            raise InvalidArgument(f"{what}: unsupported media type {mt!r}")
        if "config" not in d or not isinstance(d.get("layers", []), list):
            raise InvalidArgument(f"{what}: missing config or layers")
        return cls(mt, Descriptor.from_json(d["config"], what=f"{what} config"),
                   tuple(Descriptor.from_json(x, what=f"{what} layer") for x in d.get("layers") or ()),
                   tuple(sorted((d.get("annotations") or {}).items())))

    def to_json(self) -> dict:
        out = {"schemaVersion": 2, "mediaType": self.media_type, "config": self.config.to_json(),
               "layers": [x.to_json() for x in self.layers]}
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out


@dataclass(frozen=True)
class Index:
    media_type: str
    manifests: tuple[Descriptor, ...]
    annotations: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_json(cls, data: bytes, *, what: str = "index") -> "Index":
        d = _loads(data, what)
        mt = d.get("mediaType") or MT_OCI_INDEX
        return cls(mt, tuple(Descriptor.from_json(x, what=f"{what} entry") for x in d.get("manifests") or ()),
                   tuple(sorted((d.get("annotations") or {}).items())))

    def to_json(self) -> dict:
        out = {"schemaVersion": 2, "mediaType": self.media_type,
               "manifests": [x.to_json() for x in self.manifests]}
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out


def sniff_media_type(data: bytes) -> str:
    """The media type a manifest-ish JSON blob declares, or guesses from its shape."""
    d = _loads(data, "manifest")
    mt = d.get("mediaType")
    if mt:
        return mt
    if "manifests" in d:
        return MT_OCI_INDEX
    if "config" in d:
        return MT_OCI_MANIFEST
    raise InvalidArgument("JSON document is neither an image manifest nor an index")


@dataclass(frozen=True)
class HistoryEntry:
    created: str | None = None
    created_by: str | None = None
    author: str | None = None
    comment: str | None = None
    empty_layer: bool = False

    @classmethod
    def from_json(cls, d: dict) -> "HistoryEntry":
        return cls(d.get("created"), d.get("created_by"), d.get("author"), d.get("comment"),
                   bool(d.get("empty_layer", False)))

    def to_json(self) -> dict:
        out: dict[str, Any] = {}
        if self.created:
            out["created"] = self.created
        if self.created_by is not None:
            out["created_by"] = self.created_by
        if self.author:
            out["author"] = self.author
        if self.comment:
            out["comment"] = self.comment
        if self.empty_layer:
            out["empty_layer"] = True
        return out


# The container configuration keys Docker and OCI both use (OCI subset + Docker extras).
CONFIG_KEYS = ("User", "ExposedPorts", "Env", "Entrypoint", "Cmd", "Volumes", "WorkingDir",
               "Labels", "StopSignal", "ArgsEscaped", "Healthcheck", "OnBuild", "Shell",
               "StopTimeout")


@dataclass(frozen=True)
class ImageConfig:
    """The image config blob, parsed. ``raw`` keeps the whole JSON object as read.

    ``config`` is the container config dict (Docker's ``Config``: Cmd, Entrypoint, Env ...),
    ``diff_ids`` the uncompressed-layer digests, ``history`` the history entries.
    """

    architecture: str
    os: str
    created: str | None
    author: str | None
    config: dict
    diff_ids: tuple[Digest, ...]
    history: tuple[HistoryEntry, ...]
    variant: str | None = None
    raw: dict = field(default_factory=dict, compare=False, hash=False)

    @classmethod
    def from_json(cls, data: bytes, *, what: str = "image config") -> "ImageConfig":
        d = _loads(data, what)
        rootfs = d.get("rootfs") or {}
        if not isinstance(rootfs, dict) or rootfs.get("type", "layers") != "layers":
            raise InvalidArgument(f"{what}: rootfs.type must be 'layers'")
        try:
            diff_ids = tuple(Digest.parse(x) for x in rootfs.get("diff_ids") or ())
        except InvalidArgument as e:
            raise InvalidArgument(f"{what}: {e}") from None
        return cls(d.get("architecture", ""), d.get("os", ""), d.get("created"), d.get("author"),
                   dict(d.get("config") or {}), diff_ids,
                   tuple(HistoryEntry.from_json(h) for h in d.get("history") or () if isinstance(h, dict)),
                   d.get("variant"), d)

    def to_json(self) -> dict:
        out = {k: v for k, v in self.raw.items()}
        out.update({"architecture": self.architecture, "os": self.os,
                    "config": self.config,
                    "rootfs": {"type": "layers", "diff_ids": [str(x) for x in self.diff_ids]},
                    "history": [h.to_json() for h in self.history]})
        for k, v in (("created", self.created), ("author", self.author), ("variant", self.variant)):
            if v:
                out[k] = v
            else:
                out.pop(k, None)
        return out

    def to_bytes(self) -> bytes:
        return canonical_json(self.to_json())

    @property
    def platform(self) -> Platform:
        return Platform(self.os, self.architecture, self.variant)
