"""What the server needs to know about a pushed manifest, checked from its bytes.

:func:`inspect` parses a manifest (OCI image manifest or index, Docker schema 2 manifest
or manifest list), checks what a registry must check and returns the blobs and manifests
it references, its ``subject`` and the descriptor the referrers API lists for it. It never
changes the bytes: the registry stores and serves exactly what was pushed.
"""

from __future__ import annotations

import json
from typing import NamedTuple

from lamina.registry.server import names

MT_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MT_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MT_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
IMAGE_TYPES = (MT_OCI_MANIFEST, MT_DOCKER_MANIFEST)
INDEX_TYPES = (MT_OCI_INDEX, MT_DOCKER_LIST)
MANIFEST_TYPES = IMAGE_TYPES + INDEX_TYPES


class ManifestError(Exception):
    """The manifest is rejected: ``code`` is the wire error code, ``str()`` the message."""

    def __init__(self, code: str, message: str, detail=None) -> None:
        super().__init__(message)
        self.code = code
        self.detail = detail


class Ref(NamedTuple):
    """A descriptor the manifest points at that must exist in the repository."""

    kind: str          # "blob", "manifest", or "optional" (a non-distributable layer:
                       # kept by GC if present, not required at push)
    digest: str
    algorithm: str
    hex: str


class Info(NamedTuple):
    media_type: str
    refs: list[Ref]
    subject: str | None          # the subject's digest
    referrer: dict               # the descriptor the referrers API lists (digest/size set by caller)


def _nondistributable(desc: dict) -> bool:
    mt = desc.get("mediaType") or ""
    return "nondistributable" in mt or "foreign" in mt or bool(desc.get("urls"))


def _descriptor(d, where: str) -> tuple[str, str, str]:
    if not isinstance(d, dict):
        raise ManifestError("MANIFEST_INVALID", f"manifest invalid: {where} is not a descriptor")
    dig = d.get("digest")
    size = d.get("size")
    mt = d.get("mediaType")
    if not isinstance(dig, str) or not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ManifestError("MANIFEST_INVALID", f"manifest invalid: {where} needs a digest and a size")
    if mt is not None and not isinstance(mt, str):
        raise ManifestError("MANIFEST_INVALID", f"manifest invalid: {where} has a non-string mediaType")
    p = names.parse_digest(dig)
    if p is None:
        raise ManifestError("MANIFEST_INVALID", f"manifest invalid: {where} has an unsupported digest {dig!r}")
    return dig, p[0], p[1]


def inspect(data: bytes, content_type: str | None) -> Info:
    """Check a pushed manifest. ``content_type`` is the request's (parameters ignored).

    Raises ManifestError(MANIFEST_INVALID) for bytes that are not a manifest of a known
    type, whose ``mediaType`` disagrees with the Content-Type, or whose descriptors are
    malformed. Non-distributable layers (and any descriptor with ``urls``) are listed in
    ``refs`` as "optional": the spec lets them be absent from the registry.
    """
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError) as e:
        raise ManifestError("MANIFEST_INVALID", f"manifest invalid: not JSON ({e})") from None
    if not isinstance(doc, dict):
        raise ManifestError("MANIFEST_INVALID", "manifest invalid: not a JSON object")
    ct = (content_type or "").split(";", 1)[0].strip().lower()
    mt = doc.get("mediaType")
    if mt is not None and not isinstance(mt, str):
        raise ManifestError("MANIFEST_INVALID", "manifest invalid: mediaType is not a string")
    if ct in MANIFEST_TYPES:
        if mt and mt != ct:
            raise ManifestError("MANIFEST_INVALID",
                                f"manifest invalid: mediaType {mt!r} does not match Content-Type {ct!r}")
        media_type = ct
    elif mt in MANIFEST_TYPES:
        media_type = mt
    elif not mt and ct in ("", "application/json", "application/octet-stream"):
        media_type = MT_OCI_INDEX if "manifests" in doc else MT_OCI_MANIFEST
    else:
        raise ManifestError("MANIFEST_INVALID",
                            f"manifest invalid: unsupported manifest media type {(ct or mt)!r}")
    if doc.get("schemaVersion") != 2:
        raise ManifestError("MANIFEST_INVALID", "manifest invalid: schemaVersion must be 2")
    refs: list[Ref] = []
    referrer: dict = {"mediaType": media_type}
    art = doc.get("artifactType")
    if art is not None and not isinstance(art, str):
        raise ManifestError("MANIFEST_INVALID", "manifest invalid: artifactType is not a string")
    if media_type in IMAGE_TYPES:
        cfg = doc.get("config")
        dig, alg, hexd = _descriptor(cfg, "config")
        refs.append(Ref("blob", dig, alg, hexd))
        layers = doc.get("layers", [])
        if not isinstance(layers, list):
            raise ManifestError("MANIFEST_INVALID", "manifest invalid: layers is not a list")
        for i, layer in enumerate(layers):
            dig, alg, hexd = _descriptor(layer, f"layers[{i}]")
            refs.append(Ref("optional" if _nondistributable(layer) else "blob", dig, alg, hexd))
        referrer["artifactType"] = art or cfg.get("mediaType") or ""  # type: ignore[union-attr]  # _descriptor checked it
        if not referrer["artifactType"]:
            del referrer["artifactType"]
    else:
        mans = doc.get("manifests", [])
        if not isinstance(mans, list):
            raise ManifestError("MANIFEST_INVALID", "manifest invalid: manifests is not a list")
        for i, m in enumerate(mans):
            dig, alg, hexd = _descriptor(m, f"manifests[{i}]")
            refs.append(Ref("manifest", dig, alg, hexd))
        if art:
            referrer["artifactType"] = art
    subject = None
    if "subject" in doc and doc["subject"] is not None:
        subject, _, _ = _descriptor(doc["subject"], "subject")
    ann = doc.get("annotations")
    if ann is not None:
        if not isinstance(ann, dict) or not all(isinstance(v, str) for v in ann.values()):
            raise ManifestError("MANIFEST_INVALID", "manifest invalid: annotations must map strings to strings")
        if ann:
            referrer["annotations"] = ann
    return Info(media_type, refs, subject, referrer)


def references(data: bytes) -> tuple[list[Ref], str | None]:
    """The refs and subject of stored manifest bytes, for GC and deletion; ([], None) for
    bytes that do not parse (a stored manifest was checked when pushed)."""
    try:
        info = inspect(data, None)
    except ManifestError:
        return [], None
    return info.refs, info.subject
