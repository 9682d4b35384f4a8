"""Classical codecs of the benchmark on the working representation ``x`` (``round(x * 65535)`` as uint16): JPEG 2000
(Pillow's OpenJPEG, the SPEC's reference), HTJ2K and JPEG XL (imagecodecs), and JPEG 2000 the way users run it on the
image's full range (``jpeg2000-fullrange``, the original-unit anchor)."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from sarcodec.evaluate import ReferenceImage
from sarcodec.preprocess import db_to_intensity, normalize_db

FloatImage = npt.NDArray[np.float32]


def _to_u16(x: FloatImage) -> npt.NDArray[np.uint16]:
    return np.rint(np.clip(x, 0, 1) * 65535).astype(np.uint16)


def _from_u16(u16: npt.NDArray[Any]) -> FloatImage:
    out: FloatImage = (np.asarray(u16).astype(np.float32) / np.float32(65535)).astype(np.float32)
    return out


def jpeg2000_roundtrip(x: FloatImage, bpp: float) -> tuple[bytes, FloatImage]:
    """JPEG 2000 as the SPEC's reference: Pillow's OpenJPEG, irreversible 9/7, ``quality_layers=[16/bpp]``."""
    data = _pillow_j2k_encode(_to_u16(x), bpp)
    return data, _from_u16(_pillow_j2k_decode(data))


Roundtrip = Callable[[ReferenceImage, float, Path], tuple[int, FloatImage, Any, float, float]]
"""(image, setting, scratch dir) -> (bytes, reconstruction x, reconstruction intensity or None (then x mapped
back), encode seconds, decode seconds)."""

#: The second JPEG 2000 anchor: the codec as users run it, on the image's full range (SPEC, anchor (b)).
FULLRANGE = "jpeg2000-fullrange"


def jpeg2000_fullrange_roundtrip(image: ReferenceImage, bpp: float) -> tuple[int, FloatImage, Any, float, float]:
    """JPEG 2000 the way users run it: uint16 DN as they are (integer amplitude products), else the dB of the valid
    pixels mapped min..max to uint16 (invalid pixels 0); Pillow's OpenJPEG, irreversible 9/7, ``bpp`` target.
    Returns bytes, x under the original's params, linear intensity, encode and decode seconds. Nothing is clipped:
    bright targets keep their values up to the codec's error."""
    valid = image.valid
    if image.raw.dtype == np.uint16 and image.params.units == "amplitude":
        u16 = image.raw
        to_db_values: Callable[[npt.NDArray[Any]], npt.NDArray[np.float64]] = \
            lambda dn: 20.0 * np.log10(np.maximum(dn.astype(np.float64), 0.5))  # noqa: E731 (DN 0 decodes dark)
    else:
        db = 10.0 * np.log10(np.where(valid, image.intensity, 1.0))
        lo, hi = float(db[valid].min()), float(db[valid].max())
        span = max(hi - lo, 1e-6)
        u16 = np.where(valid, np.rint((db - lo) / span * 65535), 0).astype(np.uint16)
        to_db_values = lambda q: lo + q.astype(np.float64) / 65535 * span  # noqa: E731
    t0 = time.perf_counter()
    data = _pillow_j2k_encode(u16, bpp)
    t1 = time.perf_counter()
    decoded_db = to_db_values(_pillow_j2k_decode(data))
    t2 = time.perf_counter()
    intensity = np.where(valid, db_to_intensity(decoded_db), 0.0)
    x = normalize_db(decoded_db, image.params.db_lo, image.params.db_hi)
    return len(data), x, intensity, t1 - t0, t2 - t1


def _timed_classical(encode: Callable[[npt.NDArray[np.uint16], float], bytes],
                     decode: Callable[[bytes], npt.NDArray[Any]]) -> Roundtrip:
    def run(image: ReferenceImage, setting: float, scratch: Path) -> tuple[int, FloatImage, Any, float, float]:
        u16 = _to_u16(image.x)
        t0 = time.perf_counter()
        data = encode(u16, setting)
        t1 = time.perf_counter()
        out = _from_u16(decode(data))
        t2 = time.perf_counter()
        return len(data), out, None, t1 - t0, t2 - t1

    return run


def _pillow_j2k_encode(u16: npt.NDArray[np.uint16], bpp: float) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(u16).save(buf, format="JPEG2000", quality_mode="rates", quality_layers=[16 / bpp], irreversible=True)
    return buf.getvalue()


def _pillow_j2k_decode(data: bytes) -> npt.NDArray[Any]:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)))


def _htj2k_encode(u16: npt.NDArray[np.uint16], qstep: float) -> bytes:
    import imagecodecs

    return bytes(imagecodecs.htj2k_encode(u16, level=qstep))


def _htj2k_decode(data: bytes) -> npt.NDArray[Any]:
    import imagecodecs

    return np.asarray(imagecodecs.htj2k_decode(data))


def _jpegxl_encode(u16: npt.NDArray[np.uint16], distance: float) -> bytes:
    import imagecodecs

    return bytes(imagecodecs.jpegxl_encode(u16, distance=distance, effort=7))


def _jpegxl_decode(data: bytes) -> npt.NDArray[Any]:
    import imagecodecs

    return np.asarray(imagecodecs.jpegxl_decode(data))


#: name -> (settings swept, what the setting is, round trip). Settings cover about 0.1-4 bpp on SAR.
CLASSICAL_CODECS: dict[str, tuple[tuple[float, ...], str, Roundtrip]] = {
    "jpeg2000": ((0.1, 0.15, 0.25, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0), "target bpp (OpenJPEG, Pillow)",
                 _timed_classical(_pillow_j2k_encode, _pillow_j2k_decode)),
    "htj2k": ((0.6, 0.4, 0.3, 0.25, 0.2, 0.15, 0.12, 0.1, 0.075, 0.05), "quantization step (OpenJPH, imagecodecs)",
              _timed_classical(_htj2k_encode, _htj2k_decode)),
    "jpegxl": ((25.0, 12.0, 8.0, 6.0, 4.0, 3.0, 2.5, 2.0, 1.5, 1.0, 0.6), "distance (libjxl effort 7, imagecodecs)",
               _timed_classical(_jpegxl_encode, _jpegxl_decode)),
}
