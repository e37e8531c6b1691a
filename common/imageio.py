"""Image input and the JPEG payload codec (Pillow / libjpeg-turbo).

Every array here is ``(H, W, 3) uint8`` RGB unless stated otherwise.
The receiver must decode exactly the pixels the sender fine-tuned on, so both sides
use :func:`jpeg_decode` (same library, same settings: islow IDCT, fancy upsampling).
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageError, ImageTooLargeError

INPUT_FORMATS = ("PNG", "JPEG", "BMP", "WEBP", "TIFF")
DEFAULT_MAX_PIXELS = 50_000_000
MIN_SIDE = 8


def load_image(source: bytes | str | Path, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode PNG/JPEG/BMP/WebP/TIFF bytes or a file into ``(H, W, 3) uint8`` RGB.

    The pixel count is checked from the header *before* decoding (decompression bombs).
    EXIF orientation is applied; alpha is composited on white; 16-bit input is scaled to 8 bits.
    """
    data = Path(source).read_bytes() if isinstance(source, (str, Path)) else source
    if not data:
        raise ImageError("empty image file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img: Image.Image = Image.open(io.BytesIO(data), formats=INPUT_FORMATS)
            w, h = img.size
            if w * h > max_pixels:
                raise ImageTooLargeError(
                    f"image is {w}x{h} = {w * h} pixels; the limit is {max_pixels} pixels"
                )
            if min(w, h) < MIN_SIDE:
                raise ImageError(f"image is {w}x{h}; each side must be at least {MIN_SIDE} pixels")
            img.load()
            img = ImageOps.exif_transpose(img)
    except ImageError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageError(f"not a supported image (PNG, JPEG, BMP, WebP, TIFF): {e}") from None
    except (OSError, ValueError, SyntaxError) as e:
        raise ImageError(f"corrupt or truncated image: {e}") from None
    return _to_rgb8(img)


def _to_rgb8(img: Image.Image) -> np.ndarray:
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if arr.max() > 255 else 255.0
        arr8 = np.clip(np.round(arr * (255.0 / top)), 0, 255).astype(np.uint8)
        img = Image.fromarray(arr8, mode="L")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    out = np.asarray(img.convert("RGB"), dtype=np.uint8)
    return np.ascontiguousarray(out)


def jpeg_encode(
    rgb: np.ndarray,
    quality: int,
    *,
    optimize: bool = True,
    progressive: bool = True,
    subsampling: str = "4:2:0",
) -> bytes:
    """Encode ``(H, W, 3) uint8`` as a standard JPEG file.

    Defaults are the payload settings (progressive, optimized Huffman, 4:2:0). Pass
    ``optimize=False, progressive=False`` for Pillow's default ("plain") JPEG.
    """
    if not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality {quality} is outside 1..100")
    buf = io.BytesIO()
    Image.fromarray(rgb, mode="RGB").save(
        buf, format="JPEG", quality=int(quality), optimize=optimize, progressive=progressive,
        subsampling=subsampling,
    )
    return buf.getvalue()


def pad_to_multiple(rgb: np.ndarray, s: int) -> np.ndarray:
    """Replicate the last row/column so both sides are multiples of ``s`` (no copy if they are)."""
    h, w = rgb.shape[:2]
    ph, pw = (-h) % s, (-w) % s
    return np.pad(rgb, ((0, ph), (0, pw), (0, 0)), mode="edge") if ph or pw else rgb


def downsample(rgb: np.ndarray, s: int) -> np.ndarray:
    """Antialiased bicubic downsample by an integer factor: ``(H,W,3)`` → ``(ceil(H/s), ceil(W/s), 3)``.

    The image is first edge-padded to multiples of ``s`` so that every low-resolution pixel covers
    exactly an ``s x s`` cell; the receiver's upsample by ``s`` then crops back to ``H x W``.
    Pillow's resampling filters widen with the reduction factor, which is the antialiasing.
    """
    if s == 1:
        return rgb
    p = pad_to_multiple(rgb, s)
    h, w = p.shape[:2]
    small = Image.fromarray(np.ascontiguousarray(p), mode="RGB").resize((w // s, h // s), Image.Resampling.BICUBIC)
    return np.ascontiguousarray(np.asarray(small, dtype=np.uint8))


def jpeg_size(data: bytes) -> tuple[int, int]:
    """``(width, height)`` of a JPEG file, read from its header without decoding the pixels."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=("JPEG",)) as img:
                w, h = img.size
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError, SyntaxError) as e:
        raise ImageError(f"payload is not a JPEG: {e}") from None
    return int(w), int(h)


def jpeg_decode(data: bytes) -> np.ndarray:
    """Decode a JPEG file to ``(H, W, 3) uint8`` RGB, as the receiver will."""
    try:
        img = Image.open(io.BytesIO(data), formats=("JPEG",))
        img.load()
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise ImageError(f"payload is not a decodable JPEG: {e}") from None
    return np.ascontiguousarray(np.asarray(img.convert("RGB"), dtype=np.uint8))


def save_png(rgb: np.ndarray, path: str | Path) -> None:
    """Write ``(H, W, 3) uint8`` as PNG atomically (temp file, then rename)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    Image.fromarray(rgb, mode="RGB").save(tmp, format="PNG", compress_level=6)
    tmp.replace(path)


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly in ``folder``, sorted by name."""
    return sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
