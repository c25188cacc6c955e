"""OCI image spec and Docker schema2 value types. No I/O.

Every type is a frozen dataclass with ``from_json`` (accepting OCI and Docker schema2 media
types alike) and ``to_json``. Unknown JSON fields are kept in ``extra`` so that a manifest or
config read from elsewhere re-serialises without loss; for manifests we never re-serialise at
all: the bytes we received are stored as-is so their digest is preserved.
"""

from __future__ import annotations

import json
import os

from lamina.digest import Digest
from lamina.errors import InvalidArgument
from lamina.values import field, value

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
    from lamina.jsonsafe import loads
    obj = loads(data, what=what)
    if not isinstance(obj, dict):
        raise InvalidArgument(f"{what} is not a JSON object")
    return obj


def _str_map(v, what: str) -> tuple[tuple[str, str], ...]:
    """Annotations: a JSON object of strings (absent or null: none)."""
    if v is None:
        return ()
    if not isinstance(v, dict) or not all(isinstance(x, str) for x in v.values()):
        raise InvalidArgument(f"{what}: annotations must be an object of strings")
    return tuple(sorted(v.items()))


def _opt_str(d: dict, key: str, what: str, default: str | None = "") -> str | None:
    v = d.get(key, default)
    if v is not None and not isinstance(v, str):
        raise InvalidArgument(f"{what}: {key} must be a string")
    return v


@value
class Platform:
    os: str = "linux"
    architecture: str = "amd64"
    variant: str | None = None

    @classmethod
    def from_json(cls, d: dict, *, what: str = "platform") -> Platform:
        return cls(_opt_str(d, "os", what) or "", _opt_str(d, "architecture", what) or "",
                   _opt_str(d, "variant", what, None) or None)

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


@value
class Descriptor:
    media_type: str
    digest: Digest
    size: int
    platform: Platform | None = None
    annotations: tuple[tuple[str, str], ...] = ()
    urls: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, d: dict, *, what: str = "descriptor") -> Descriptor:
        if not isinstance(d, dict):
            raise InvalidArgument(f"{what}: a descriptor must be a JSON object")
        if not isinstance(d.get("digest"), str):
            raise InvalidArgument(f"{what}: missing or invalid field 'digest'")
        digest = Digest.parse(d["digest"])
        size = d.get("size")
        if not isinstance(size, int) or isinstance(size, bool):
            raise InvalidArgument(f"{what} {digest}: missing or invalid field 'size' (an integer)")
        if size < 0 or size >= 1 << 63:
            raise InvalidArgument(f"{what} {digest}: size {size} out of range")
        plat = Platform.from_json(d["platform"], what=f"{what} platform") \
            if isinstance(d.get("platform"), dict) else None
        ann = _str_map(d.get("annotations"), what)
        urls = d.get("urls") or []
        if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
            raise InvalidArgument(f"{what}: urls must be a list of strings")
        return cls(_opt_str(d, "mediaType", what) or "", digest, size, plat, ann, tuple(urls))

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


@value
class Manifest:
    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]
    annotations: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_json(cls, data: bytes, *, what: str = "manifest") -> Manifest:
        d = _loads(data, what)
        mt = d.get("mediaType") or MT_OCI_MANIFEST
        if mt not in MANIFEST_TYPES:
            raise InvalidArgument(f"{what}: unsupported media type {str(mt)[:100]!r}")
        if "config" not in d or not isinstance(d.get("layers") or [], list):
            raise InvalidArgument(f"{what}: missing config or layers")
        return cls(mt, Descriptor.from_json(d["config"], what=f"{what} config"),
                   tuple(Descriptor.from_json(x, what=f"{what} layer") for x in d.get("layers") or ()),
                   _str_map(d.get("annotations"), what))

    def to_json(self) -> dict:
        out = {"schemaVersion": 2, "mediaType": self.media_type, "config": self.config.to_json(),
               "layers": [x.to_json() for x in self.layers]}
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out


@value
class Index:
    media_type: str
    manifests: tuple[Descriptor, ...]
    annotations: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_json(cls, data: bytes, *, what: str = "index") -> Index:
        d = _loads(data, what)
        mt = _opt_str(d, "mediaType", what) or MT_OCI_INDEX
        if not isinstance(d.get("manifests") or [], list):
            raise InvalidArgument(f"{what}: manifests must be a list")
        return cls(mt, tuple(Descriptor.from_json(x, what=f"{what} entry") for x in d.get("manifests") or ()),
                   _str_map(d.get("annotations"), what))

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
        if not isinstance(mt, str):
            raise InvalidArgument("manifest: mediaType must be a string")
        return mt
    if "manifests" in d:
        return MT_OCI_INDEX
    if "config" in d:
        return MT_OCI_MANIFEST
    raise InvalidArgument("JSON document is neither an image manifest nor an index")


@value
class HistoryEntry:
    created: str | None = None
    created_by: str | None = None
    author: str | None = None
    comment: str | None = None
    empty_layer: bool = False

    @classmethod
    def from_json(cls, d: dict) -> HistoryEntry:
        def s(k):  # a history entry of the wrong shape shows as blank, as Docker shows it
            v = d.get(k)
            return v if isinstance(v, str) else None
        return cls(s("created"), s("created_by"), s("author"), s("comment"),
                   d.get("empty_layer") is True)

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


def _check_container_config(c: dict, what: str) -> None:
    """The shapes lamina relies on in an image's container config, as Go's types decode it:
    anything else is refused (a string Cmd/Entrypoint/Shell becomes a one-element list in
    ``c``, as Docker's StrSlice reads it)."""
    def strs(v):
        return isinstance(v, list) and all(isinstance(x, str) for x in v)
    for k in ("Cmd", "Entrypoint", "Shell"):  # Docker's StrSlice: a string is a one-element list
        if isinstance(c.get(k), str):
            c[k] = [c[k]]
    for k in ("Cmd", "Entrypoint", "Env", "Shell", "OnBuild"):
        if c.get(k) is not None and not strs(c[k]):
            raise InvalidArgument(f"{what}: config.{k} must be a list of strings")
    for k in ("User", "WorkingDir", "StopSignal"):
        if c.get(k) is not None and not isinstance(c[k], str):
            raise InvalidArgument(f"{what}: config.{k} must be a string")
    if c.get("Labels") is not None and not (isinstance(c["Labels"], dict) and
                                            all(isinstance(v, str) for v in c["Labels"].values())):
        raise InvalidArgument(f"{what}: config.Labels must be an object of strings")
    for k in ("ExposedPorts", "Volumes"):
        if c.get(k) is not None and not isinstance(c[k], dict):
            raise InvalidArgument(f"{what}: config.{k} must be a JSON object")


# The container configuration keys Docker and OCI both use (OCI subset + Docker extras).
CONFIG_KEYS = ("User", "ExposedPorts", "Env", "Entrypoint", "Cmd", "Volumes", "WorkingDir",
               "Labels", "StopSignal", "ArgsEscaped", "Healthcheck", "OnBuild", "Shell",
               "StopTimeout")


@value
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
    def from_json(cls, data: bytes, *, what: str = "image config") -> ImageConfig:
        d = _loads(data, what)
        rootfs = d.get("rootfs") or {}
        if not isinstance(rootfs, dict) or rootfs.get("type", "layers") != "layers":
            raise InvalidArgument(f"{what}: rootfs.type must be 'layers'")
        ids = rootfs.get("diff_ids") or []
        if not isinstance(ids, list) or not all(isinstance(x, str) for x in ids):
            raise InvalidArgument(f"{what}: rootfs.diff_ids must be a list of digests")
        try:
            diff_ids = tuple(Digest.parse(x) for x in ids)
        except InvalidArgument as e:
            raise InvalidArgument(f"{what}: {e}") from None
        config = d.get("config") or {}
        if not isinstance(config, dict):
            raise InvalidArgument(f"{what}: config must be a JSON object")
        config = dict(config)
        _check_container_config(config, what)
        history = d.get("history") or []
        if not isinstance(history, list):
            raise InvalidArgument(f"{what}: history must be a list")
        for k in ("architecture", "os", "created", "author", "variant"):
            _opt_str(d, k, what, None)
        return cls(d.get("architecture") or "", d.get("os") or "", d.get("created"), d.get("author"),
                   dict(config), diff_ids,
                   tuple(HistoryEntry.from_json(h) for h in history if isinstance(h, dict)),
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
