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

import csv
import json
import math
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from sarcodec.errors import BadInputError
from sarcodec.io.folders import results_folder
from sarcodec.bench.classical import CLASSICAL_CODECS, FULLRANGE, Roundtrip, jpeg2000_fullrange_roundtrip
from sarcodec.bench.bd import group_bd
from sarcodec.bench.plots import mean_curves, plot_rd, save_gallery
from sarcodec.evaluate import ReferenceImage, load_reference
from sarcodec.io.raster import find_rasters

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


def sarc_roundtrip(model: str, speckle: bool = False) -> Roundtrip:
    """The ``.sarc`` round trip of ``model`` (with ``speckle``: files written with ``compress --speckle``, decoded
    with their synthesized speckle)."""
    from sarcodec.codec.api import compress, decompress

    def run(image: ReferenceImage, quality: float, scratch: Path) -> tuple[int, FloatImage, Any, float, float]:
        path = scratch / f"{image.path.stem}.sarc"
        t0 = time.perf_counter()
        result = compress(image.raw, path, quality=quality, model=model, units=image.params.units,
                          nodata=image.params.nodata, device="cpu", overwrite=True, speckle=speckle)
        t1 = time.perf_counter()
        decoded = decompress(path, model=model, device="cpu").array  # a path model is not in the shipped set
        t2 = time.perf_counter()
        assert decoded is not None
        x_hat, intensity = image.decoded(decoded)  # x under the ORIGINAL's parameters, and the full range
        path.unlink()
        return result.bytes, x_hat, intensity, t1 - t0, t2 - t1

    return run


#: What ``benchmark --speckle`` appends to a learned codec's name for its ``compress --speckle`` variant.
SPECKLE_SUFFIX = "+speckle"


def learned_roundtrip(codec: str) -> Roundtrip:
    """The round trip a benchmark row's learned ``codec`` name (``sarcodec-MODEL``, ``sarcodec-MODEL+speckle``)
    stands for."""
    model = codec.removeprefix("sarcodec-")
    speckle = model.endswith(SPECKLE_SUFFIX)
    return sarc_roundtrip(model.removesuffix(SPECKLE_SUFFIX), speckle=speckle)


def _learned_codecs(models: Sequence[str], speckle: bool = False
                    ) -> dict[str, tuple[tuple[float, ...], str, Roundtrip]]:
    from sarcodec.codec.registry import load_codec

    out: dict[str, tuple[tuple[float, ...], str, Roundtrip]] = {}
    for model in models:
        codec = load_codec(model)
        settings = tuple(float(q) for q in range(1, codec.num_levels + 1))
        out[f"sarcodec-{codec.name}"] = (settings, "quality level (.sarc file, end to end)", sarc_roundtrip(model))
        if speckle:
            out[f"sarcodec-{codec.name}{SPECKLE_SUFFIX}"] = (
                settings, "quality level (.sarc file written with --speckle, end to end)",
                sarc_roundtrip(model, speckle=True))
    return out


def _seed_codecs(checkpoints: Sequence[str]) -> dict[str, tuple[tuple[float, ...], str, Roundtrip]]:
    from sarcodec.codec.latent import LatentCoder
    from sarcodec.models import AutoencoderBase
    from sarcodec.train.checkpoint import load_model_from_checkpoint

    out: dict[str, tuple[tuple[float, ...], str, Roundtrip]] = {}
    for ckpt in checkpoints:
        path = Path(ckpt) / "best.pth" if Path(ckpt).is_dir() else Path(ckpt)  # a checkpoint or its run directory
        model = load_model_from_checkpoint(path)
        if not isinstance(model, AutoencoderBase):
            raise BadInputError(f"{path}: not a seed-study autoencoder checkpoint (the latent coder codes those)")
        coder = LatentCoder(model, path.parent.name or path.stem)
        out[f"seed-{coder.name}"] = (coder.settings, "latent step / latent std", coder.roundtrip)
    return out


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
    speckle: bool = False,
) -> dict[str, Any]:
    """Run the benchmark; returns ``{"rows": [...], "bd": [...]}`` and writes the files listed in the module doc.
    With ``speckle``, every learned codec is also run as written by ``compress --speckle`` (its name plus
    :data:`SPECKLE_SUFFIX`)."""
    from sarcodec.codec.registry import current_codecs

    out = Path(output)
    files = find_rasters(list(inputs))
    if not files:
        raise BadInputError("no rasters found in the given inputs")
    if models is None:
        models = current_codecs()
    if speckle and not models:
        raise BadInputError("--speckle runs the learned codecs' speckle variants: give at least one model")
    table = {**_learned_codecs(models, speckle), **_seed_codecs(checkpoints)}
    wanted = list(codecs) if codecs is not None else list(CLASSICAL_CODECS)
    unknown = [c for c in wanted if c not in CLASSICAL_CODECS]
    if unknown:
        raise BadInputError(f"unknown codec(s) {', '.join(unknown)}; classical codecs: {', '.join(CLASSICAL_CODECS)}")
    if "jpeg2000" not in wanted:
        wanted.insert(0, "jpeg2000")  # the anchor of every BD figure
    table = {**{c: CLASSICAL_CODECS[c] for c in wanted}, **table}
    results_folder(out, "results.json", "benchmark")
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
    bd = group_bd(rows, "jpeg2000", bd_range)
    _write_outputs(out, rows, bd, table, gallery_picks, gallery, bd_range, gallery_bpp, sources, units)
    return {"rows": [asdict(r) for r in rows], "bd": bd}


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
        plot_rd(rows, key, label, out / f"rd_{key}.png")
    for image in picks.values():
        if gallery.get(image.name):
            save_gallery(image, gallery[image.name], out / f"gallery_{image.group}.png")  # one image per group
    psnr_curves = mean_curves(rows, "psnr")
    enl_curves = mean_curves(rows, "enl_ratio")
    ssim_curves = mean_curves(rows, "ssim")
    at_rates = []
    for (group, codec) in sorted(psnr_curves, key=lambda k: (k[0] != "sentinel1", k)):
        entry: dict[str, Any] = {"group": group, "codec": codec}
        for rate in (0.25, 0.5, 1.0, 2.0):
            entry[f"psnr@{rate}"] = _interp_at(psnr_curves[(group, codec)], rate)
        entry["ssim@1.0"] = _interp_at(ssim_curves[(group, codec)], 1.0)
        for rate in (0.5, 1.0):  # codec v2's ENL target is stated at 0.5 and 1 bpp
            entry[f"enl@{rate}"] = _interp_at(enl_curves[(group, codec)], rate)
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
                                  ("ssim@1.0", "SSIM@1", 3), ("enl@0.5", "ENL ratio@0.5", 2),
                                  ("enl@1.0", "ENL ratio@1", 2)]),
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
