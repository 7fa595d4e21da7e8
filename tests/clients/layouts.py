"""Build valid OCI image layouts on disk, in pure Python, as test data for real clients.

A layout (OCI image-layout spec) is::

    ROOT/
        oci-layout              {"imageLayoutVersion": "1.0.0"}
        index.json              one descriptor per tag (annotation ...image.ref.name)
        blobs/sha256/<hex>      every blob: layers (tar+gzip), configs, manifests, indexes

Images are deterministic for a given ``seed`` (tar and gzip headers carry no timestamps), so two
builds of the same image have the same digests. A layer is a gzip'd tar of a few small files; the
config's ``rootfs.diff_ids`` hold the digests of the *uncompressed* tars, as clients verify on
pull (podman refuses an image whose diff_ids do not match).

``skopeo copy oci:ROOT:TAG ...`` reads these layouts; ``skopeo copy ... oci:ROOT:TAG`` writes
layouts that :func:`read_layout` reads back for comparison.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "OCI_CONFIG",
    "OCI_INDEX",
    "OCI_LAYER_GZIP",
    "OCI_MANIFEST",
    "REF_NAME",
    "BuiltImage",
    "BuiltIndex",
    "Descriptor",
    "Layout",
    "build_image",
    "build_index",
    "layer_tar_gz",
    "read_layout",
    "sha256",
]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
REF_NAME = "org.opencontainers.image.ref.name"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _json(doc: Mapping[str, Any]) -> bytes:
    return json.dumps(doc, indent=2, sort_keys=False).encode()


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    platform: Mapping[str, str] | None = None
    annotations: Mapping[str, str] | None = None

    @classmethod
    def of(cls, media_type: str, data: bytes, **kw: Any) -> Descriptor:
        return cls(media_type, sha256(data), len(data), **kw)

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
        }
        if self.platform:
            doc["platform"] = dict(self.platform)
        if self.annotations:
            doc["annotations"] = dict(self.annotations)
        return doc


@dataclass(frozen=True)
class BuiltImage:
    """One single-platform image: its manifest, config and layers (all also written as blobs)."""

    manifest: bytes
    config: bytes
    layers: tuple[bytes, ...]
    diff_ids: tuple[str, ...]
    architecture: str

    @property
    def digest(self) -> str:
        return sha256(self.manifest)

    @property
    def blobs(self) -> dict[str, bytes]:
        """Every blob the manifest references, by digest."""
        out = {sha256(self.config): self.config}
        out.update((sha256(layer), layer) for layer in self.layers)
        return out

    def descriptor(self, **kw: Any) -> Descriptor:
        return Descriptor.of(OCI_MANIFEST, self.manifest, **kw)


@dataclass(frozen=True)
class BuiltIndex:
    """A multi-platform image index and its child images."""

    index: bytes
    images: tuple[BuiltImage, ...]

    @property
    def digest(self) -> str:
        return sha256(self.index)

    def image_for(self, architecture: str) -> BuiltImage:
        for image in self.images:
            if image.architecture == architecture:
                return image
        raise KeyError(architecture)


def layer_tar_gz(files: Mapping[str, bytes]) -> tuple[bytes, str]:
    """A deterministic gzip'd tar of ``files``; returns (compressed layer, diff_id)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, content in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mode = 0o644
            info.mtime = 0
            info.uname = info.gname = "root"
            tar.addfile(info, io.BytesIO(content))
    tar_bytes = raw.getvalue()
    return gzip.compress(tar_bytes, mtime=0), sha256(tar_bytes)


class Layout:
    """An OCI image layout directory: writes blobs and tags, reads them back."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def init(self) -> Layout:
        (self.root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (self.root / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
        if not (self.root / "index.json").exists():
            self._write_index([])
        return self

    def blob_path(self, digest: str) -> Path:
        algorithm, _, hexpart = digest.partition(":")
        return self.root / "blobs" / algorithm / hexpart

    def write_blob(self, data: bytes) -> str:
        digest = sha256(data)
        self.blob_path(digest).write_bytes(data)
        return digest

    def read_blob(self, digest: str) -> bytes:
        data = self.blob_path(digest).read_bytes()
        assert sha256(data) == digest, f"blob {digest} in {self.root} does not match its digest"
        return data

    def index(self) -> dict[str, Any]:
        return json.loads((self.root / "index.json").read_text())

    def tags(self) -> dict[str, dict[str, Any]]:
        """Tag -> descriptor, from index.json."""
        return {
            m["annotations"][REF_NAME]: m
            for m in self.index().get("manifests", [])
            if REF_NAME in m.get("annotations", {})
        }

    def tag(self, tag: str, descriptor: Descriptor) -> None:
        annotations = {**(descriptor.annotations or {}), REF_NAME: tag}
        entry = Descriptor(
            descriptor.media_type, descriptor.digest, descriptor.size, None, annotations
        ).to_json()
        kept = [
            m
            for m in self.index().get("manifests", [])
            if m.get("annotations", {}).get(REF_NAME) != tag
        ]
        self._write_index([*kept, entry])

    def _write_index(self, manifests: Sequence[Mapping[str, Any]]) -> None:
        doc = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": list(manifests)}
        (self.root / "index.json").write_bytes(_json(doc))

    def resolve(self, tag: str) -> tuple[str, bytes]:
        """(media type, manifest or index bytes) tagged ``tag``."""
        desc = self.tags()[tag]
        return desc["mediaType"], self.read_blob(desc["digest"])

    def all_blobs(self) -> dict[str, bytes]:
        """Every blob in the layout, by digest (each verified against its digest)."""
        out: dict[str, bytes] = {}
        for path in sorted((self.root / "blobs").glob("*/*")):
            digest = f"{path.parent.name}:{path.name}"
            out[digest] = self.read_blob(digest)
        return out


def read_layout(root: Path) -> Layout:
    return Layout(root)


def _image(
    layout: Layout,
    *,
    seed: str,
    architecture: str,
    layer_files: Sequence[Mapping[str, bytes]],
    annotations: Mapping[str, str] | None,
) -> BuiltImage:
    layers: list[bytes] = []
    diff_ids: list[str] = []
    for files in layer_files:
        layer, diff_id = layer_tar_gz(files)
        layers.append(layer)
        diff_ids.append(diff_id)
    config = _json(
        {
            "architecture": architecture,
            "os": "linux",
            "config": {
                "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                "Cmd": ["/bin/sh"],
                "Labels": {"org.seawall.test.seed": seed},
            },
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [{"created_by": f"seawall test layer {i}"} for i in range(len(layers))],
        }
    )
    manifest_doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": Descriptor.of(OCI_CONFIG, config).to_json(),
        "layers": [Descriptor.of(OCI_LAYER_GZIP, layer).to_json() for layer in layers],
    }
    if annotations:
        manifest_doc["annotations"] = dict(annotations)
    manifest = _json(manifest_doc)
    for blob in (config, *layers, manifest):
        layout.write_blob(blob)
    return BuiltImage(manifest, config, tuple(layers), tuple(diff_ids), architecture)


def default_layers(seed: str, architecture: str, count: int) -> list[dict[str, bytes]]:
    return [
        {
            f"etc/seawall/{seed}-{i}.txt": f"seawall {seed} {architecture} layer {i}\n".encode(),
            f"usr/share/seawall/{seed}-{i}.bin": hashlib.sha256(
                f"{seed}/{architecture}/{i}".encode()
            ).digest()
            * 64,
        }
        for i in range(count)
    ]


def build_image(
    root: Path,
    tag: str = "latest",
    *,
    seed: str = "seawall",
    architecture: str = "amd64",
    layers: int = 2,
    annotations: Mapping[str, str] | None = None,
) -> BuiltImage:
    """Write one single-platform image into the layout at ``root``, tagged ``tag``."""
    layout = Layout(root).init()
    image = _image(
        layout,
        seed=seed,
        architecture=architecture,
        layer_files=default_layers(seed, architecture, layers),
        annotations=annotations,
    )
    layout.tag(tag, image.descriptor())
    return image


def build_index(
    root: Path,
    tag: str = "latest",
    *,
    seed: str = "seawall",
    architectures: Sequence[str] = ("amd64", "arm64"),
    layers: int = 1,
) -> BuiltIndex:
    """Write a multi-platform image index (one image per architecture) tagged ``tag``."""
    layout = Layout(root).init()
    images = tuple(
        _image(
            layout,
            seed=seed,
            architecture=arch,
            layer_files=default_layers(seed, arch, layers),
            annotations=None,
        )
        for arch in architectures
    )
    index = _json(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                image.descriptor(
                    platform={"architecture": image.architecture, "os": "linux"}
                ).to_json()
                for image in images
            ],
        }
    )
    layout.write_blob(index)
    layout.tag(tag, Descriptor.of(OCI_INDEX, index))
    return BuiltIndex(index, images)
