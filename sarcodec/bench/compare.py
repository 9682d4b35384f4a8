"""``decompress --compare``: one decoded scene scored against its original beside JPEG 2000 at the same bitrate (on
the same pixels and on the full range), and the viewer page of the three (``--html``)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import numpy.typing as npt

from sarcodec.errors import BadInputError, OutputError
from sarcodec.bench.classical import jpeg2000_fullrange_roundtrip, jpeg2000_roundtrip
from sarcodec.evaluate import ReferenceImage, load_reference


def compare_with_jpeg2000(original: str | Path, decoded: npt.NDArray[Any], sarc_bytes: int,
                          units: str | None = None, band: int | None = None) -> list[dict[str, Any]]:
    """Score a decoded image against its original, next to JPEG 2000 at the same bitrate on the same pixels and
    on the full range (SPEC metrics: x_norm and original units)."""
    return _compare(original, decoded, sarc_bytes, units, band)[1]


def _compare(original: str | Path, decoded: npt.NDArray[Any], sarc_bytes: int, units: str | None,
             band: int | None) -> tuple[ReferenceImage, list[dict[str, Any]], dict[str, Any]]:
    """compare_with_jpeg2000's rows, with the original and the linear intensity of the sarcodec and full-range
    JPEG 2000 reconstructions (for the HTML page)."""
    image = load_reference(original, units, band=band)
    if decoded.shape != image.x.shape:
        raise BadInputError(f"{original}: shape {image.x.shape} differs from the decoded image's {decoded.shape}")
    bpp = sarc_bytes * 8 / image.x.size
    x_hat, intensity = image.decoded(decoded)
    data, x_j2k = jpeg2000_roundtrip(image.x, bpp)
    n_full, x_full, i_full, _, _ = jpeg2000_fullrange_roundtrip(image, bpp)
    rows = []
    for name, nbytes, rec, rec_intensity in (("sarcodec", sarc_bytes, x_hat, intensity),
                                             ("jpeg2000, same pixels", len(data), x_j2k, None),
                                             ("jpeg2000, full range", n_full, x_full, i_full)):
        score = image.score(rec, rec_intensity)
        rows.append({"codec": name, "bytes": nbytes, "bpp": nbytes * 8 / image.x.size,
                     **{k: v for k, v in score.to_dict().items() if k not in ("image", "group", "pixels")}})
    return image, rows, {"sarc": intensity, "j2k": i_full}


def decompress_and_compare(sarc: str | Path, output: str | Path, original: str | Path, *, band: int | None = None,
                           model: str | Path | None = None, cog: bool = False, device: str | None = "cpu",
                           runtime: str = "auto", overwrite: bool = False, progress: bool = False,
                           html: str | Path | None = None, speckle: bool = True) -> tuple[Any, list[dict[str, Any]]]:
    """``decompress`` to ``output``, then :func:`compare_with_jpeg2000` against ``original`` (its ``band``, by
    default the band the file was written from); with ``html``, also the viewer page of the three images there.
    Everything the comparison needs is checked before anything is written: ``original`` must not be the output,
    must be readable and must have the decoded image's shape; ``html`` must be writable."""
    from sarcodec.codec.api import decompress
    from sarcodec.codec.info import read_info
    from sarcodec.io.raster import open_raster

    out, orig = Path(output), Path(original)
    with contextlib.suppress(OSError):
        if out.resolve() == orig.resolve():
            raise OutputError(f"{out}: the output would overwrite ORIGINAL, the image it is compared against")
    if html is not None:
        from sarcodec.bench.viewer import check_page_output

        check_page_output(html, overwrite, inputs=(sarc, orig, out))
    info = read_info(sarc)
    if band is None:
        band = int(info["band"])
    with open_raster(orig, band) as reader:  # a multi-band original without a matching band fails here
        shape = (reader.info.height, reader.info.width)
    if shape != (info["height"], info["width"]):
        raise BadInputError(f"{orig}: shape {shape[0]} x {shape[1]} differs from the file's "
                            f"{info['height']} x {info['width']}")
    existed = out.exists() or out.is_symlink()
    result = decompress(sarc, out, model=model, cog=cog, device=device, runtime=runtime, overwrite=overwrite,
                        progress=progress, speckle=speckle)
    try:
        with open_raster(out) as reader:
            decoded = reader.read()
        image, rows, recon = _compare(orig, decoded, info["file_bytes"], info["units"], band)
        if html is not None:
            from sarcodec.bench.viewer import ViewImage, ViewPoint, write_page

            sarc_row, j2k_row = rows[0], rows[2]
            point = ViewPoint(f"this file ({sarc_row['bpp']:.3f} bpp)", recon["sarc"], recon["j2k"],
                              [sarc_row, j2k_row])
            view = ViewImage(image.name, image.group, image.intensity, image.valid, image.params.db_lo,
                             image.params.db_hi, [point])
            write_page(html, [view], title=f"{Path(sarc).name} against {orig.name}", overwrite=overwrite)
    except BaseException:  # the command failed as a whole: a decoded file it created would block the rerun
        if not existed:
            with contextlib.suppress(OSError):  # the failure that brought us here is the one to report
                out.unlink(missing_ok=True)
        raise
    return result, rows


COMPARE_COLUMNS: list[tuple[str, str, int]] = [
    ("codec", "codec", 0), ("bytes", "bytes", 0), ("bpp", "bpp", 3), ("psnr", "PSNR x_norm (dB)", 2),
    ("ssim", "SSIM x_norm", 3), ("enl_ratio", "ENL ratio", 2), ("epi", "EPI x_norm", 3), ("rmse_db", "RMSE (dB)", 2),
    ("bias_db", "bias (dB)", 3), ("hom_bias_db", "hom. bias (dB)", 3), ("peak_db", "point-target err (dB)", 2),
    ("cfar_f1", "CFAR F1", 2)]
"""Columns of the comparison table (``decompress --compare``)."""
