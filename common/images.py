"""Reading radiographs (PNG, JPEG, DICOM) into 8-bit grayscale, and encoding them for storage."""
from pathlib import Path

import cv2
import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".dcm", ".dicom")


class ImageError(ValueError):
    """An image that cannot be read; the message names the file and why."""


def _to_uint8(pixels: np.ndarray) -> np.ndarray:
    """Min-max scales any numeric array to 0-255 (8-bit input is returned unchanged)."""
    if pixels.dtype == np.uint8:
        return pixels
    pixels = pixels.astype(np.float64)
    lo, hi = np.nanmin(pixels), np.nanmax(pixels)
    if not np.isfinite(lo) or hi <= lo:
        return np.zeros(pixels.shape, np.uint8)
    return np.round((pixels - lo) * (255.0 / (hi - lo))).astype(np.uint8)


def _read_dicom(path: Path) -> np.ndarray:
    import pydicom
    from pydicom.pixels import apply_modality_lut, apply_voi_lut
    try:
        ds = pydicom.dcmread(path)
        pixels = ds.pixel_array
    except Exception as e:  # pydicom raises many types for damaged files
        raise ImageError(f"{path}: not a readable DICOM image ({type(e).__name__}: {e})") from e
    if pixels.ndim == 3 and pixels.shape[-1] in (3, 4):
        pixels = cv2.cvtColor(_to_uint8(pixels[..., :3]), cv2.COLOR_RGB2GRAY)
    elif pixels.ndim != 2:
        raise ImageError(f"{path}: DICOM pixel data has shape {pixels.shape}; expected one 2-D frame")
    try:
        pixels = apply_voi_lut(apply_modality_lut(pixels, ds), ds)  # rescale, then the display window
    except Exception:  # files without the tags keep their stored values
        pass
    pixels = _to_uint8(pixels)
    if getattr(ds, "PhotometricInterpretation", "") == "MONOCHROME1":
        pixels = 255 - pixels  # MONOCHROME1: high values are dark; radiographs here show bone bright
    return pixels


def read_image(path) -> np.ndarray:
    """Reads a radiograph as a 2-D uint8 array (bone bright). Raises ImageError if impossible."""
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"{path}: image file not found")
    if path.suffix.lower() in (".dcm", ".dicom"):
        return _read_dicom(path)
    data = np.fromfile(path, dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise ImageError(f"{path}: cannot decode image (empty, truncated or not PNG/JPEG)")
    if image.ndim == 3:
        if image.shape[-1] == 4:  # transparency carries no radiographic information
            image = image[..., :3]
        image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    return _to_uint8(image)


def cap_long_side(image: np.ndarray, max_side: int | None) -> np.ndarray:
    """Shrinks (never enlarges) so that the long side is at most `max_side`, keeping aspect."""
    if not max_side:
        return image
    h, w = image.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1:
        return image
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def encode_png(image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    if not ok:
        raise ImageError("PNG encoding failed")
    return buf.tobytes()


def index_images(root) -> dict[str, Path]:
    """Maps file stem (the id) -> path for every image under `root`, recursively.

    Hidden files and macOS resource forks ("._1234.png") are ignored.
    """
    index = {}
    for path in sorted(Path(root).rglob("*")):
        if path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".") and path.is_file():
            index.setdefault(path.stem, path)
    return index
