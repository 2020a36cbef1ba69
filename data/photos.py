"""Hazard photos: checked by content, stored behind a small interface.

``PhotoStorage`` is what the hazard store needs: ``put``, ``get``, ``delete``
by key.  ``DirectoryStorage`` keeps the bytes under the data directory
(``<data_dir>/photos/<key>``, written to a temporary file and renamed, so a
reader never sees half a photo); a production deployment can hand the store
another implementation of the same three methods (an object store such as
MinIO/OSS/S3) without touching anything else.

``check_image`` looks at the bytes, never at the file name: JPEG, PNG and WebP
are accepted by their signatures, anything else (a text file renamed ``.jpg``)
is refused with a reason code.  The bytes are then decoded with Pillow: a file
that carries an image signature but does not decode (truncated, corrupt) is
refused as well, and so is one whose pixel count would make decoding it a
memory bomb.  ``make_thumbnail`` gives the small JPEG the screens show
(``THUMB_MAX_PX`` on the long side, EXIF orientation applied, no metadata kept,
so a photo's GPS tags never reach a thumbnail).
"""

from __future__ import annotations

import io
import os
import tempfile
import warnings
from pathlib import Path
from typing import Protocol

from PIL import Image, ImageOps

# content type -> file extension
IMAGE_TYPES = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp"}
MIN_IMAGE_BYTES = 16
# A phone photo is 12-50 MP; a decompression bomb is a small file that claims far more.
MAX_IMAGE_PIXELS = 80_000_000
THUMB_MAX_PX = 320


class PhotoRefused(ValueError):
    """An upload that is not stored: ``code`` is the reason (too_large, empty, not_an_image)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def check_image(data: bytes, max_bytes: int) -> str:
    """The content type of ``data`` when it is an accepted image, else ``PhotoRefused``."""
    if len(data) > max_bytes:
        raise PhotoRefused("too_large", f"the photo has {len(data)} bytes; at most {max_bytes} are accepted")
    if not data:
        raise PhotoRefused("empty", "the photo is empty")
    # The kind first, then the size: a small GIF is not an image we take, not "truncated".
    if data[:3] == b"\xff\xd8\xff":
        kind = "image/jpeg"
    elif data[:8] == b"\x89PNG\r\n\x1a\n":
        kind = "image/png"
    elif data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        kind = "image/webp"
    else:
        raise PhotoRefused("not_an_image", "the file is not a JPEG, PNG or WebP image (its content was checked, "
                                           "not its name)")
    if len(data) < MIN_IMAGE_BYTES:
        raise PhotoRefused("empty", "the photo is truncated")
    return kind


def _decode(data: bytes) -> Image.Image:
    """The decoded image, or ``PhotoRefused`` (corrupt or truncated; too many pixels)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            w, h = img.size
            if w * h > MAX_IMAGE_PIXELS:
                raise PhotoRefused("too_large", f"the photo has {w}x{h} pixels; at most {MAX_IMAGE_PIXELS} "
                                                "pixels are accepted")
            img.load()
    except PhotoRefused:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise PhotoRefused("too_large", f"the photo claims too many pixels ({exc})") from None
    except (OSError, ValueError, SyntaxError) as exc:  # Pillow's ways of saying "not decodable"
        raise PhotoRefused("not_an_image", f"the image does not decode: {exc}") from None
    return img


def make_thumbnail(data: bytes) -> bytes:
    """A JPEG of at most ``THUMB_MAX_PX`` on its long side, upright, without metadata.

    ``data`` is an image ``check_image`` accepted; a corrupt one raises ``PhotoRefused``."""
    img = ImageOps.exif_transpose(_decode(data))
    img.thumbnail((THUMB_MAX_PX, THUMB_MAX_PX))
    if img.mode not in ("RGB", "L"):
        rgba = img.convert("RGBA")
        img = Image.new("RGB", rgba.size, (255, 255, 255))
        img.paste(rgba, mask=rgba.getchannel("A"))
    out = io.BytesIO()
    img.save(out, "JPEG", quality=80, optimize=True)
    return out.getvalue()


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
