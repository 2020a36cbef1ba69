"""Hazard photos: checked by content, stored behind a small interface.

``PhotoStorage`` is what the hazard store needs: ``put``, ``get``, ``delete``
by key.  ``DirectoryStorage`` keeps the bytes under the data directory
(``<data_dir>/photos/<key>``, written to a temporary file and renamed, so a
reader never sees half a photo); a production deployment can hand the store
another implementation of the same three methods (an object store such as
MinIO/OSS/S3) without touching anything else.

``check_image`` looks at the bytes, never at the file name: JPEG, PNG and WebP
are accepted by their signatures, anything else (a text file renamed ``.jpg``)
is refused with a reason code.  Pillow is not a dependency, so no thumbnails
are made: ``thumb_key`` stays empty and the screens scale the photo
(docs/api.md).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Protocol

# content type -> file extension
IMAGE_TYPES = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp"}
MIN_IMAGE_BYTES = 16


class PhotoRefused(ValueError):
    """An upload that is not stored: ``code`` is the reason (too_large, empty, not_an_image)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def check_image(data: bytes, max_bytes: int) -> str:
    """The content type of ``data`` when it is an accepted image, else ``PhotoRefused``."""
    if len(data) > max_bytes:
        raise PhotoRefused("too_large", f"the photo has {len(data)} bytes; at most {max_bytes} are accepted")
    if len(data) < MIN_IMAGE_BYTES:
        raise PhotoRefused("empty", "the photo is empty or truncated")
    if data[:3] == b"\xff\xd8\xff":
        return "image/jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "image/png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    raise PhotoRefused("not_an_image", "the file is not a JPEG, PNG or WebP image (its content was checked, "
                                       "not its name)")


class PhotoStorage(Protocol):
    def put(self, key: str, data: bytes, content_type: str) -> None: ...

    def get(self, key: str) -> bytes: ...

    def delete(self, key: str) -> None: ...


class DirectoryStorage:
    """Photos as files under ``root`` (default: ``<data_dir>/photos``)."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        p = (self.root / key).resolve()
        if self.root.resolve() not in p.parents:
            raise ValueError(f"bad photo key {key!r}")
        return p

    def put(self, key: str, data: bytes, content_type: str) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".up-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)
