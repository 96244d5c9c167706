"""The media library: staff's images, verified with Pillow and stored by the hash of their bytes."""

from __future__ import annotations

import hashlib
import io
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps, ImageSequence, UnidentifiedImageError
from sqlmodel import Session, col, select

from mailer import audit
from mailer.db import get_by_id
from mailer.markup import single_line
from mailer.models import MediaImage

# Pillow's format -> the stored file's extension and its content type. Nothing else is
# opened (Pillow is told to try only these): no SVG, TIFF, BMP or PDF.
FORMATS = {
    "PNG": ("png", "image/png"),
    "JPEG": ("jpg", "image/jpeg"),
    "GIF": ("gif", "image/gif"),
    "WEBP": ("webp", "image/webp"),
}
CONTENT_TYPES = dict(FORMATS.values())
NAME = re.compile(r"[0-9a-f]{64}\.(png|jpg|gif|webp)")
MAX_PIXELS = 50_000_000  # 50 megapixels: a larger image is refused before it is decoded
FOLDER = "media"  # under [paths] var


class MediaError(ValueError):
    """An upload is refused; the message tells the person uploading why, and what to do."""


@dataclass(frozen=True)
class Checked:
    """An upload decoded in full: the bytes to store, and what they are."""

    data: bytes
    extension: str
    content_type: str
    width: int
    height: int


def folder_of(var_dir: Path) -> Path:
    return var_dir / FOLDER


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f}".rstrip("0").rstrip(".")


def _looks_like_svg(data: bytes, filename: str) -> bool:
    head = data[:512].lstrip().lower()
    return filename.lower().endswith((".svg", ".svgz")) or head.startswith((b"<?xml", b"<svg"))


def _reencoded(image: Image.Image, kind: str) -> bytes:
    """A still PNG or JPEG written again by Pillow: only the pixels (and colour profile)
    are kept, so metadata such as a photo's GPS position is not published."""
    out = io.BytesIO()
    icc = image.info.get("icc_profile")
    extra = {"icc_profile": icc} if icc else {}
    if kind == "JPEG":
        upright = ImageOps.exif_transpose(image)  # phones store portraits on their side
        turned = upright.size != image.size or image.getexif().get(0x0112, 1) != 1
        if turned or image.format != "JPEG":
            upright.save(out, "JPEG", quality=90, optimize=True, **extra)
        else:  # the original's quantisation: no loss of quality, about the same size
            image.save(out, "JPEG", quality="keep", optimize=True, **extra)
    else:
        image.save(out, "PNG", optimize=True, **extra)
    return out.getvalue()


def too_large(name: str, size: int, limit: int) -> str:
    """Why a file of ``size`` bytes is refused."""
    return (
        f"{name} is {_megabytes(size)} MB; the library takes images up to "
        f"{_megabytes(limit)} MB ([web] image_limit_mb): make it smaller (an email needs "
        "no more than 1200 pixels across) and upload it again"
    )


def check_image(data: bytes, filename: str, limit: int) -> Checked:
    """Verify an upload as a PNG, JPEG, GIF or WebP image by decoding it (every frame);
    stills in PNG or JPEG are re-encoded, GIF and WebP are kept as they came.

    :raises MediaError: empty, larger than ``limit`` bytes, SVG, not one of the four kinds
        (whatever its name says), damaged, or more than 50 megapixels.
    """
    name = filename or "the file"
    if not data:
        raise MediaError(f"{name} is empty: choose an image to upload")
    if len(data) > limit:
        raise MediaError(too_large(name, len(data), limit))
    if _looks_like_svg(data, filename):
        raise MediaError(
            f"{name} is an SVG drawing: SVG is not accepted (it can carry scripts, and many "
            "email programs do not show it); upload a PNG, JPEG, GIF or WebP instead"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=list(FORMATS)) as probe:
                kind = str(probe.format)
                width, height = probe.size
                if width * height > MAX_PIXELS:
                    raise MediaError(
                        f"{name} is {width}×{height} pixels; the library takes images of up "  # noqa: RUF001
                        "to 50 megapixels: make it smaller and upload it again"
                    )
                probe.verify()  # the file's structure and checksums
            with Image.open(io.BytesIO(data), formats=list(FORMATS)) as image:
                frames = 0
                for frame in ImageSequence.Iterator(image):  # decode every pixel
                    frame.load()
                    frames += 1
                image.seek(0)
                if kind == "MPO":  # a phone's JPEG with a second picture: the first is kept
                    kind = "JPEG"
                elif frames > 1 or kind in ("GIF", "WEBP"):
                    kind = "KEEP" if kind == "PNG" else kind  # an animated PNG
                stored = _reencoded(image, kind) if kind in ("PNG", "JPEG") else data
                kind = "PNG" if kind == "KEEP" else kind
        if stored is not data:
            with Image.open(io.BytesIO(stored)) as final:
                width, height = final.size
    except MediaError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise MediaError(
            f"{name} has far too many pixels for an email image: make it smaller and upload "
            "it again"
        ) from None
    except UnidentifiedImageError:
        raise MediaError(
            f"{name} is not a PNG, JPEG, GIF or WebP image (whatever its name says): upload "
            "one of those"
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise MediaError(f"{name} cannot be read as an image ({exc}): it may be damaged") from None
    extension, content_type = FORMATS[kind]
    return Checked(stored, extension, content_type, width, height)


def clean_alt(alt: str) -> str:
    """The alt text, on one line.

    :raises MediaError: empty, several lines, or longer than 300 characters.
    """
    try:
        return single_line(alt, "Alt text", max_length=300)
    except ValueError as exc:
        if not " ".join(alt.split()):
            raise MediaError(
                "Alt text: describe what the picture shows, for readers who cannot see it"
            ) from None
        raise MediaError(str(exc)) from None


def store(
    session: Session,
    data: bytes,
    *,
    filename: str,
    alt: str,
    uploaded_by: str,
    folder: Path,
    limit: int,
) -> tuple[MediaImage, bool]:
    """Add an uploaded image to the library (audited by ``uploaded_by``); the caller
    commits. The same image uploaded again is the one already there (False).

    :raises MediaError: the alt text is missing or the file is refused (see
        :func:`check_image`).
    """
    text = clean_alt(alt)
    checked = check_image(data, filename, limit)
    name = f"{hashlib.sha256(checked.data).hexdigest()}.{checked.extension}"
    existing = by_name(session, name)
    if existing is not None:
        return existing, False
    folder.mkdir(parents=True, exist_ok=True)
    part = folder / f".{name}.part"
    part.write_bytes(checked.data)
    os.replace(part, folder / name)
    row = MediaImage(
        name=name,
        content_type=checked.content_type,
        width=checked.width,
        height=checked.height,
        size=len(checked.data),
        alt=text,
        original_name=" ".join(Path(filename or "").name.split())[:200],
        uploaded_by=uploaded_by,
    )
    session.add(row)
    session.flush()
    audit.record(
        session, uploaded_by, "media:upload", name, f"{row.width}x{row.height} {row.original_name}"
    )
    return row, True


def set_alt(session: Session, media_id: int, alt: str, *, by: str) -> MediaImage:
    """Change an image's alt text (audited); issues already written keep their own.

    :raises MediaError: no such image, or the alt text is refused.
    """
    row = get_by_id(session, MediaImage, media_id)
    if row is None:
        raise MediaError(f"there is no image {media_id} in the library")
    row.alt = clean_alt(alt)
    session.add(row)
    session.flush()
    audit.record(session, by, "media:alt", row.name, row.alt)
    return row


def listing(session: Session) -> list[MediaImage]:
    """Every image of the library, the newest first."""
    return list(
        session.exec(
            select(MediaImage).order_by(col(MediaImage.created_at).desc(), col(MediaImage.id))
        ).all()
    )


def by_name(session: Session, name: str) -> MediaImage | None:
    return session.exec(select(MediaImage).where(col(MediaImage.name) == name)).first()


def url(root: str, name: str) -> str:
    """Where readers' email programs fetch the image: ``{base_url}/media/<name>``."""
    return f"{root.rstrip('/')}/media/{name}"


def file_of(folder: Path, name: str) -> Path | None:
    """The stored file of ``name``, or None: not a library name (no path, no other
    extension) or not stored."""
    if not NAME.fullmatch(name):
        return None
    path = folder / name
    return path if path.is_file() else None


def content_type(name: str) -> str:
    return CONTENT_TYPES[name.rsplit(".", 1)[-1]]
