"""``sarcodec benchmark``: learned codecs against JPEG 2000, HTJ2K and JPEG XL on the same pixels, same metrics.

For each image: the working representation ``x`` under the image's own parameters (SPEC: dB of intensity,
0.1/99.9 percentile clip, [0, 1]); classical codecs code ``round(x * 65535)`` as uint16; learned codecs go through
the product path end to end (``sarcodec.compress`` of the raw image to a ``.sarc`` file, ``sarcodec.decompress``
back to the input's units, then ``x`` again under the original's parameters), so their bytes are the whole
``.sarc`` file (header, parameters, mask, tiles). Each codec is swept over its rate setting (about 0.1-4 bpp) and
every reconstruction is scored with ``sarcodec.evaluate.ReferenceImage.score`` (PSNR, SSIM, ENL ratio, EPI).

Outputs in the output directory: ``results.csv``/``results.json`` (one row per image, codec and setting),
``rd_psnr.png``, ``rd_ssim.png``, ``rd_enl_ratio.png`` (group means against bpp), ``gallery_*.png`` and
``report.md`` (BD-rate and BD-PSNR of every codec against JPEG 2000 per image group, with paired statistics
across the group's images).

BD metrics (:func:`bd_metrics`): Bjøntegaard deltas per image with PCHIP interpolation, integrated over exactly the
rate range ``--bd-range`` of the JPEG 2000 anchor (default 0.25-2 bpp); the group figure is the mean of the
per-image values, with the median, the number of images where the codec beats JPEG 2000 and a Wilcoxon
signed-rank p-value (scipy) across images.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import tempfile
import time
import warnings
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from sarcodec.errors import BadInputError, OutputError
from sarcodec.evaluate import ReferenceImage, load_reference
from sarcodec.io.raster import find_rasters
from sarcodec.preprocess import db_to_intensity, normalize_db

__all__ = [
    "CLASSICAL_CODECS",
    "BenchRow",
    "bd_metrics",
    "compare_with_jpeg2000",
    "jpeg2000_roundtrip",
    "run_benchmark",
]

FloatImage = npt.NDArray[np.float32]


@dataclass
class BenchRow:
    """One (image, codec, setting) measurement."""

    image: str
    group: str
    codec: str
    setting: float
    bytes: int
    bpp: float
    psnr: float
    ssim: float
    enl_ratio: float
    epi: float
    encode_s: float
    decode_s: float
    rmse_db: float = math.nan
    bias_db: float = math.nan
    hom_bias_db: float = math.nan
    peak_db: float = math.nan
    cfar_f1: float = math.nan


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


def _sarc_roundtrip(model: str) -> Roundtrip:
    from sarcodec.codec.api import compress, decompress

    def run(image: ReferenceImage, quality: float, scratch: Path) -> tuple[int, FloatImage, Any, float, float]:
        path = scratch / f"{image.path.stem}.sarc"
        t0 = time.perf_counter()
        result = compress(image.raw, path, quality=quality, model=model, units=image.params.units,
                          nodata=image.params.nodata, device="cpu", overwrite=True)
        t1 = time.perf_counter()
        decoded = decompress(path, device="cpu").array
        t2 = time.perf_counter()
        assert decoded is not None
        x_hat, intensity = image.decoded(decoded)  # x under the ORIGINAL's parameters, and the full range
        path.unlink()
        return result.bytes, x_hat, intensity, t1 - t0, t2 - t1

    return run


def _learned_codecs(models: Sequence[str]) -> dict[str, tuple[tuple[float, ...], str, Roundtrip]]:
    from sarcodec.codec.registry import load_codec

    out: dict[str, tuple[tuple[float, ...], str, Roundtrip]] = {}
    for model in models:
        codec = load_codec(model)
        settings = tuple(float(q) for q in range(1, codec.num_levels + 1))
        out[f"sarcodec-{codec.name}"] = (settings, "quality level (.sarc file, end to end)", _sarc_roundtrip(model))
    return out


def _seed_codecs(checkpoints: Sequence[str]) -> dict[str, tuple[tuple[float, ...], str, Roundtrip]]:
    from sarcodec.codec.latent import LatentCoder

    out: dict[str, tuple[tuple[float, ...], str, Roundtrip]] = {}
    for ckpt in checkpoints:
        coder = LatentCoder.from_checkpoint(ckpt)
        out[f"seed-{coder.name}"] = (coder.settings, "latent step / latent std", coder.roundtrip)
    return out


def _curve(points: Sequence[tuple[float, float]]) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """(log rates, PSNRs) sorted by rate, keeping only points that raise the PSNR (a monotone RD curve)."""
    pts = sorted((r, p) for r, p in points if r > 0 and math.isfinite(p))
    keep: list[tuple[float, float]] = []
    for r, p in pts:
        if not keep or p > keep[-1][1]:
            keep.append((r, p))
    arr = np.asarray(keep, dtype=np.float64).reshape(-1, 2)
    return np.log(arr[:, 0]), arr[:, 1]


def bd_metrics(anchor: Sequence[tuple[float, float]], test: Sequence[tuple[float, float]],
               bd_range: tuple[float, float] = (0.25, 2.0)) -> tuple[float, float]:
    """(BD-rate in %, BD-PSNR in dB) of ``test`` against ``anchor``, both lists of (bpp, PSNR).

    Bjøntegaard deltas with PCHIP interpolation of each curve (log-rate vs PSNR), integrated over exactly the rates
    ``bd_range`` of the anchor: BD-PSNR over log-rates in ``bd_range`` (intersected with both curves' ranges),
    BD-rate over the PSNRs the anchor reaches in ``bd_range`` (intersected with the test curve's PSNRs).
    NaN when the curves do not overlap there.
    """
    from scipy.interpolate import PchipInterpolator

    la, pa = _curve(anchor)
    lt, pt = _curve(test)
    if len(la) < 2 or len(lt) < 2:
        return math.nan, math.nan
    lo, hi = math.log(bd_range[0]), math.log(bd_range[1])
    psnr_of_a, psnr_of_t = PchipInterpolator(la, pa), PchipInterpolator(lt, pt)
    r0, r1 = max(lo, la[0], lt[0]), min(hi, la[-1], lt[-1])
    bd_psnr = math.nan
    if r1 > r0:
        grid = np.linspace(r0, r1, 2001)
        bd_psnr = float(np.mean(psnr_of_t(grid) - psnr_of_a(grid)))
    a0, a1 = float(psnr_of_a(max(lo, la[0]))), float(psnr_of_a(min(hi, la[-1])))
    q0, q1 = max(a0, pt[0]), min(a1, pt[-1])
    bd_rate = math.nan
    if q1 > q0:
        grid = np.linspace(q0, q1, 2001)
        rate_of_a, rate_of_t = PchipInterpolator(pa, la), PchipInterpolator(pt, lt)
        bd_rate = float((math.exp(np.mean(rate_of_t(grid) - rate_of_a(grid))) - 1) * 100)
    return bd_rate, bd_psnr


def _group_bd(rows: Sequence[BenchRow], anchor: str, bd_range: tuple[float, float]) -> list[dict[str, Any]]:
    from scipy.stats import wilcoxon

    curves: dict[tuple[str, str, str], list[tuple[float, float]]] = defaultdict(list)
    for r in rows:
        curves[(r.group, r.image, r.codec)].append((r.bpp, r.psnr))
    per: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    for (group, image, codec), points in curves.items():
        if codec == anchor or (group, image, anchor) not in curves:
            continue
        per[(group, codec)].append(bd_metrics(curves[(group, image, anchor)], points, bd_range))
    table = []
    for (group, codec), values in sorted(per.items()):
        rates = np.array([v[0] for v in values])
        psnrs = np.array([v[1] for v in values])
        ok = np.isfinite(rates)
        p = math.nan
        if ok.sum() >= 2 and np.any(rates[ok] != 0):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                p = float(wilcoxon(rates[ok]).pvalue)
        table.append({
            "group": group, "codec": codec, "images": int(ok.sum()),
            "bd_rate": float(np.mean(rates[ok])) if ok.any() else math.nan,
            "bd_rate_median": float(np.median(rates[ok])) if ok.any() else math.nan,
            "bd_psnr": float(np.nanmean(psnrs)) if np.isfinite(psnrs).any() else math.nan,
            "wins": f"{int((rates[ok] < 0).sum())}/{int(ok.sum())}",
            "wilcoxon_p": p,
        })
    return table


def _mean_curves(rows: Sequence[BenchRow], key: str) -> dict[tuple[str, str], list[tuple[float, float]]]:
    acc: dict[tuple[str, str, float], list[BenchRow]] = defaultdict(list)
    for r in rows:
        acc[(r.group, r.codec, r.setting)].append(r)
    curves: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    for (group, codec, _), rs in acc.items():
        values = [getattr(r, key) for r in rs]
        curves[(group, codec)].append((float(np.mean([r.bpp for r in rs])), float(np.nanmean(values))))
    return {k: sorted(v) for k, v in curves.items()}


def _plot(rows: Sequence[BenchRow], key: str, label: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = _mean_curves(rows, key)
    groups = sorted({g for g, _ in curves}, key=lambda g: (g != "sentinel1", g))
    codecs = sorted({c for _, c in curves})
    fig, axes = plt.subplots(1, len(groups), figsize=(4.2 * len(groups), 3.6), squeeze=False)
    for ax, group in zip(axes[0], groups):
        for codec in codecs:
            pts = curves.get((group, codec))
            if pts:
                style = "-o" if codec.startswith("sarcodec") else "--s" if codec == "jpeg2000" else ":^"
                ax.plot(*zip(*pts), style, ms=3, lw=1.2, label=codec)
        ax.set_xscale("log")
        ax.set_xlabel("bits per pixel (log)")
        ax.set_ylabel(label)
        ax.set_title(group, fontsize=9)
        if key == "enl_ratio":
            ax.axhspan(0.8, 1.25, color="0.9", zorder=0)
        ax.grid(alpha=0.3, which="both")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _gallery(image: ReferenceImage, recons: dict[str, tuple[float, FloatImage]], path: Path, crop: int = 96) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h, w = image.x.shape
    r0, c0 = max(0, h // 2 - crop // 2), max(0, w // 2 - crop // 2)
    window = (slice(r0, r0 + crop), slice(c0, c0 + crop))
    n = len(recons) + 1
    fig, axes = plt.subplots(2, n, figsize=(2.2 * n, 4.6), squeeze=False)
    lo, hi = image.params.db_lo, image.params.db_hi
    extent = None
    axes[0, 0].imshow(image.x[window] * (hi - lo) + lo, cmap="gray", vmin=lo, vmax=hi, extent=extent)
    axes[0, 0].set_title("original", fontsize=8)
    axes[1, 0].axis("off")
    im = None
    for col, (codec, (bpp, x_hat)) in enumerate(sorted(recons.items()), start=1):
        axes[0, col].imshow(x_hat[window] * (hi - lo) + lo, cmap="gray", vmin=lo, vmax=hi)
        axes[0, col].set_title(f"{codec}\n{bpp:.2f} bpp", fontsize=7)
        im = axes[1, col].imshow((x_hat[window] - image.x[window]) * (hi - lo), cmap="RdBu_r", vmin=-10, vmax=10)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    if im is not None:
        fig.colorbar(im, ax=axes[1, :].tolist(), shrink=0.7, label="error (dB)")
    fig.suptitle(f"{image.name}: dB, fixed scale [{lo:.1f}, {hi:.1f}] dB; {crop}x{crop} centre crop", fontsize=8)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _row(image: ReferenceImage, codec: str, setting: float, nbytes: int, x_hat: FloatImage, intensity: Any,
         enc: float, dec: float) -> BenchRow:
    score = image.score(x_hat, intensity)
    return BenchRow(image.name, image.group, codec, float(setting), nbytes, nbytes * 8 / image.x.size, score.psnr,
                    score.ssim, score.enl_ratio, score.epi, enc, dec, score.rmse_db, score.bias_db, score.hom_bias_db,
                    score.peak_db, score.cfar_f1)


def run_benchmark(
    inputs: Sequence[str | Path],
    output: str | Path,
    *,
    codecs: Sequence[str] | None = None,
    models: Sequence[str] | None = None,
    checkpoints: Sequence[str] = (),
    units: str | None = None,
    bd_range: tuple[float, float] = (0.25, 2.0),
    gallery_bpp: float = 1.0,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run the benchmark; returns ``{"rows": [...], "bd": [...]}`` and writes the files listed in the module doc."""
    from sarcodec.codec.registry import shipped_codecs

    out = Path(output)
    files = find_rasters(list(inputs))
    if not files:
        raise BadInputError("no rasters found in the given inputs")
    if models is None:
        models = shipped_codecs()
    table = {**_learned_codecs(models), **_seed_codecs(checkpoints)}
    wanted = list(codecs) if codecs is not None else list(CLASSICAL_CODECS)
    unknown = [c for c in wanted if c not in CLASSICAL_CODECS]
    if unknown:
        raise BadInputError(f"unknown codec(s) {', '.join(unknown)}; classical codecs: {', '.join(CLASSICAL_CODECS)}")
    if "jpeg2000" not in wanted:
        wanted.insert(0, "jpeg2000")  # the anchor of every BD figure
    table = {**{c: CLASSICAL_CODECS[c] for c in wanted}, **table}
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{out}: cannot be created ({exc.strerror or exc})") from None
    rows: list[BenchRow] = []
    gallery_picks: dict[str, ReferenceImage] = {}
    gallery: dict[str, dict[str, tuple[float, FloatImage]]] = defaultdict(dict)
    sources: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="sarcodec-bench-") as scratch:
        names = [p.name for p in files]
        for i, path in enumerate(files, 1):
            # Images are keyed by file name; same-named files in different folders get their folder too.
            label = path.name if names.count(path.name) == 1 else f"{path.parent.name}/{path.name}"
            image = load_reference(path, units, name=label)
            sources[image.name] = str(path.resolve())
            gallery_picks.setdefault(image.group, image)
            log(f"[{i}/{len(files)}] {image.name} ({image.group}, {image.x.shape[0]} x {image.x.shape[1]})")
            learned_bpps: list[float] = []
            for name, (settings, _, roundtrip) in table.items():
                for setting in settings:
                    nbytes, x_hat, intensity, enc, dec = roundtrip(image, setting, Path(scratch))
                    row = _row(image, name, setting, nbytes, x_hat, intensity, enc, dec)
                    rows.append(row)
                    if name.startswith("sarcodec-"):
                        learned_bpps.append(row.bpp)
                    if gallery_picks[image.group] is image:
                        best = gallery[image.name].get(name)
                        if best is None or abs(math.log(row.bpp / gallery_bpp)) < abs(math.log(best[0] / gallery_bpp)):
                            gallery[image.name][name] = (row.bpp, x_hat)
            # The full-range anchor at exactly the learned codecs' file sizes (fidelity at equal bpp).
            for target in sorted(set(learned_bpps)):
                nbytes, x_hat, intensity, enc, dec = jpeg2000_fullrange_roundtrip(image, target)
                rows.append(_row(image, FULLRANGE, target, nbytes, x_hat, intensity, enc, dec))
    bd = _group_bd(rows, "jpeg2000", bd_range)
    _write_outputs(out, rows, bd, table, gallery_picks, gallery, bd_range, gallery_bpp, sources, units)
    return {"rows": [asdict(r) for r in rows], "bd": bd}


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
                           overwrite: bool = False, progress: bool = False,
                           html: str | Path | None = None) -> tuple[Any, list[dict[str, Any]]]:
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
    result = decompress(sarc, out, model=model, cog=cog, device=device, overwrite=overwrite, progress=progress)
    with open_raster(out) as reader:
        decoded = reader.read()
    image, rows, recon = _compare(orig, decoded, info["file_bytes"], info["units"], band)
    if html is not None:
        from sarcodec.bench.viewer import ViewImage, ViewPoint, write_page

        sarc_row, j2k_row = rows[0], rows[2]
        point = ViewPoint(f"this file ({sarc_row['bpp']:.3f} bpp)", recon["sarc"], recon["j2k"], [sarc_row, j2k_row])
        view = ViewImage(image.name, image.group, image.intensity, image.valid, image.params.db_lo,
                         image.params.db_hi, [point])
        write_page(html, [view], title=f"{Path(sarc).name} against {orig.name}", overwrite=overwrite)
    return result, rows


COMPARE_COLUMNS: list[tuple[str, str, int]] = [
    ("codec", "codec", 0), ("bytes", "bytes", 0), ("bpp", "bpp", 3), ("psnr", "PSNR x_norm (dB)", 2),
    ("ssim", "SSIM x_norm", 3), ("enl_ratio", "ENL ratio", 2), ("epi", "EPI x_norm", 3), ("rmse_db", "RMSE (dB)", 2),
    ("bias_db", "bias (dB)", 3), ("hom_bias_db", "hom. bias (dB)", 3), ("peak_db", "point-target err (dB)", 2),
    ("cfar_f1", "CFAR F1", 2)]
"""Columns of the comparison table (``decompress --compare``)."""


def fidelity_table(rows: Sequence[BenchRow]) -> list[dict[str, Any]]:
    """Per group, learned codec and quality: medians of the original-unit metrics of the learned codec and of
    the full-range JPEG 2000 run at each of its files' bpp (rows pair up by image and bpp)."""
    anchor = {(r.image, r.setting): r for r in rows if r.codec == FULLRANGE}
    cells: dict[tuple[str, str, float], list[tuple[BenchRow, BenchRow]]] = defaultdict(list)
    for r in rows:
        match = anchor.get((r.image, r.bpp))
        if r.codec.startswith("sarcodec-") and match is not None:
            cells[(r.group, r.codec, r.setting)].append((r, match))
    keys = ("bpp", "bias_db", "hom_bias_db", "peak_db", "cfar_f1", "rmse_db")
    table = []
    for (group, codec, quality), pairs in sorted(cells.items(), key=lambda kv: (kv[0][0] != "sentinel1", kv[0])):
        entry: dict[str, Any] = {"group": group, "codec": codec, "quality": f"{quality:g}", "images": len(pairs)}
        for key in keys:
            entry[key] = float(np.nanmedian([getattr(a, key) for a, _ in pairs]))
            entry[f"j2k_{key}"] = float(np.nanmedian([getattr(b, key) for _, b in pairs]))
        table.append(entry)
    return table


def _interp_at(points: Sequence[tuple[float, float]], bpp: float) -> float:
    xs, ys = zip(*sorted(points))
    if not xs[0] <= bpp <= xs[-1]:
        return math.nan
    return float(np.interp(math.log(bpp), np.log(xs), ys))


def _write_outputs(out: Path, rows: Sequence[BenchRow], bd: Sequence[dict[str, Any]],
                   table: dict[str, tuple[tuple[float, ...], str, Roundtrip]], picks: dict[str, ReferenceImage],
                   gallery: dict[str, dict[str, tuple[float, FloatImage]]], bd_range: tuple[float, float],
                   gallery_bpp: float, sources: dict[str, str], units: str | None) -> None:
    from sarcodec.report import markdown_table

    dicts = [asdict(r) for r in rows]
    with open(out / "results.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(dicts[0]))
        writer.writeheader()
        writer.writerows(dicts)
    # sources and units let `sarcodec report` rebuild the reconstructions for the HTML viewer
    (out / "results.json").write_text(json.dumps({"rows": dicts, "bd": bd, "bd_range": bd_range,
                                                  "sources": sources, "units": units}, indent=1))
    for key, label in (("psnr", "PSNR (dB)"), ("ssim", "SSIM"), ("enl_ratio", "ENL ratio")):
        _plot(rows, key, label, out / f"rd_{key}.png")
    for image in picks.values():
        if gallery.get(image.name):
            _gallery(image, gallery[image.name], out / f"gallery_{image.group}.png")  # one image per group
    psnr_curves = _mean_curves(rows, "psnr")
    enl_curves = _mean_curves(rows, "enl_ratio")
    ssim_curves = _mean_curves(rows, "ssim")
    at_rates = []
    for (group, codec) in sorted(psnr_curves, key=lambda k: (k[0] != "sentinel1", k)):
        entry: dict[str, Any] = {"group": group, "codec": codec}
        for rate in (0.25, 0.5, 1.0, 2.0):
            entry[f"psnr@{rate}"] = _interp_at(psnr_curves[(group, codec)], rate)
        entry["ssim@1.0"] = _interp_at(ssim_curves[(group, codec)], 1.0)
        entry["enl@1.0"] = _interp_at(enl_curves[(group, codec)], 1.0)
        at_rates.append(entry)
    timing: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        pixels = r.bytes * 8 / r.bpp if r.bpp else 0
        timing[r.codec].append(pixels / 1e6 / max(r.encode_s, 1e-9))
        timing[f"{r.codec} decode"].append(pixels / 1e6 / max(r.decode_s, 1e-9))
    images = sorted({(r.group, r.image) for r in rows})
    fidelity = fidelity_table(rows)
    lines = [
        "# Benchmark: learned codecs vs JPEG 2000, HTJ2K and JPEG XL",
        "",
        f"{len(images)} images; groups: " + ", ".join(f"{g} ({sum(1 for gg, _ in images if gg == g)})"
                                                       for g in sorted({g for g, _ in images})) + ".",
        "Working representation per image: dB of intensity, 0.1/99.9 percentile clip, [0, 1]; classical codecs code "
        "round(x * 65535) as uint16; learned codecs: whole .sarc file, decoded to the input's units and re-mapped "
        "with the original's parameters. bpp = all bytes x 8 / pixels.",
        "",
        f"## BD-rate and BD-PSNR against JPEG 2000 ({bd_range[0]:g}-{bd_range[1]:g} bpp, PCHIP, per image, then mean)",
        "",
        "Negative BD-rate = fewer bits than JPEG 2000 for the same PSNR. `wins` = images where the codec needs "
        "fewer bits; `p` = Wilcoxon signed-rank test of the per-image BD-rates against 0.",
        "",
        markdown_table(sorted(bd, key=lambda d: (d["group"] != "sentinel1", d["group"], d["codec"])), [
            ("group", "group", 0), ("codec", "codec", 0), ("images", "images", 0), ("bd_rate", "BD-rate (%)", 1),
            ("bd_rate_median", "median (%)", 1), ("bd_psnr", "BD-PSNR (dB)", 2), ("wins", "wins", 0),
            ("wilcoxon_p", "p", 3)]),
        "",
        "## Group means at fixed rates (interpolated in log-bpp)",
        "",
        markdown_table(at_rates, [("group", "group", 0), ("codec", "codec", 0), ("psnr@0.25", "PSNR@0.25", 2),
                                  ("psnr@0.5", "PSNR@0.5", 2), ("psnr@1.0", "PSNR@1", 2), ("psnr@2.0", "PSNR@2", 2),
                                  ("ssim@1.0", "SSIM@1", 3), ("enl@1.0", "ENL ratio@1", 2)]),
        "",
        "## Original units at equal file size: sarcodec against JPEG 2000 on the full range",
        "",
        "Per group and quality level, medians over the group's images. Each sarcodec file is matched by JPEG 2000 "
        f"(`{FULLRANGE}`: the image's own uint16 DN, or its valid dB min..max mapped to uint16) run at that file's "
        "bpp in the same run. Linear intensity, valid pixels, no clipping: `bias` = 10 log10(mean R / mean I), "
        "`hom` = the same over the most homogeneous 10 % of 9 x 9 windows, `peak` = median |dB error| on the "
        "brightest 0.1 %, `cfar` = F1 of CA-CFAR detections (12 dB, 31 x 31 window, 9 x 9 guard, 1 px tolerance).",
        "",
        markdown_table(fidelity, [
            ("group", "group", 0), ("codec", "codec", 0), ("quality", "q", 0), ("images", "images", 0),
            ("bpp", "bpp", 3), ("j2k_bpp", "J2K bpp", 3), ("bias_db", "bias (dB)", 3),
            ("j2k_bias_db", "J2K bias", 3), ("hom_bias_db", "hom (dB)", 3), ("j2k_hom_bias_db", "J2K hom", 3),
            ("peak_db", "peak (dB)", 2), ("j2k_peak_db", "J2K peak", 2), ("cfar_f1", "CFAR F1", 2),
            ("j2k_cfar_f1", "J2K CFAR F1", 2), ("rmse_db", "RMSE (dB)", 2), ("j2k_rmse_db", "J2K RMSE", 2)]),
        "",
        "![PSNR](rd_psnr.png)",
        "![SSIM](rd_ssim.png)",
        "![ENL ratio](rd_enl_ratio.png)",
        "",
        "## Codecs and settings",
        "",
        *[f"- `{name}`: {what}: {', '.join(f'{s:g}' for s in settings)}" for name, (settings, what, _) in table.items()],
        "",
        "## Speed on these images (median MP/s, this machine, single images: includes per-call overhead)",
        "",
        *[f"- {name}: {np.median(v):.2f} MP/s" for name, v in sorted(timing.items())],
        "",
        f"## Gallery (setting closest to {gallery_bpp:g} bpp; dB on a fixed scale; error maps in dB)",
        "",
        *[f"![{g}](gallery_{g}.png)" for g in sorted(picks) if gallery.get(picks[g].name)],
        "",
    ]
    (out / "report.md").write_text("\n".join(lines))
