"""Evaluate reconstructions of whole SAR images with the SPEC's protocol.

For each image: per-image preprocessing params (the ORIGINAL's clip bounds), the model's reconstruction of the
whole image (models accept any size), then PSNR and SSIM on the [0, 1] working representation, PSNR in dB units,
EPI on the working representation, and the ENL ratio on linear intensity over homogeneous regions of the original.
The ENL ratio's reference is the original intensity as given (SPEC), not its clipped copy: the clip to [db_lo, db_hi]
is part of the lossy path, so an exact copy of x_norm can score slightly above 1 (1.00-1.11 on the bundled samples).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from sarcodec import metrics
from sarcodec.io.folders import results_folder
from sarcodec.io.raster import find_rasters, open_raster
from sarcodec.preprocess import (
    DEFAULT_CLIP_PERCENTILES,
    PreprocessingParams,
    db_to_intensity,
    denormalize_db,
    normalize_db,
    params_for_array,
    to_db,
)

Reconstruct = Callable[[npt.NDArray[np.float32]], npt.NDArray[np.float32]]
"""x_norm (H, W) in [0, 1] -> reconstruction (H, W) in [0, 1]."""

# Image groups of ../shared/data/sar/dev, by file name; the first match wins.
DEFAULT_GROUPS: tuple[tuple[str, str], ...] = (
    ("sentinel1", r"sentinel1"),
    ("airsar", r"airsar"),
    ("pisar", r"pisar"),
    ("mstar", r"^mstar_"),
)


def image_group(path: str | Path, groups: Sequence[tuple[str, str]] = DEFAULT_GROUPS) -> str:
    name = Path(path).name
    for group, pattern in groups:
        if re.search(pattern, name):
            return group
    return "other"


@dataclass(frozen=True)
class ImageScore:
    """Metrics of one reconstruction of one image."""

    image: str
    group: str
    pixels: int
    psnr: float  # dB, on x_norm (data range 1); identical to PSNR of the clipped dB images with range hi - lo
    ssim: float  # on x_norm
    enl_ratio: float  # ENL(reconstruction) / ENL(original), linear intensity, homogeneous regions
    epi: float  # on x_norm
    # Original units (linear intensity, valid pixels, no clipping; sarcodec.metrics.fidelity)
    rmse_db: float = float("nan")
    bias_db: float = float("nan")
    hom_bias_db: float = float("nan")
    peak_db: float = float("nan")
    cfar_f1: float = float("nan")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def score_reconstruction(
    x_norm: npt.NDArray[np.float32],
    x_hat: npt.NDArray[np.float32],
    intensity: npt.NDArray[Any],
    valid: npt.NDArray[np.bool_],
    db_lo: float,
    db_hi: float,
    *,
    image: str = "",
    group: str = "",
    recon_intensity: npt.NDArray[Any] | None = None,
) -> ImageScore:
    """All metrics of one reconstruction ``x_hat`` of ``x_norm`` (both (H, W) in [0, 1]).

    ``recon_intensity``: the reconstruction in linear intensity when it has more than ``x_hat`` holds (a decoded
    ``.sarc`` covers the original's whole range); by default ``x_hat`` mapped back (clipped to [db_lo, db_hi]).
    The ENL ratio and the original-unit metrics are computed on it."""
    if recon_intensity is None:
        recon_intensity = db_to_intensity(denormalize_db(x_hat, db_lo, db_hi))
    fidelity = metrics.fidelity(recon_intensity, intensity, valid)
    small = min(x_norm.shape) < metrics.SSIM_WIN_SIZE  # SSIM's window (and the ENL regions) need more pixels
    return ImageScore(
        image=image,
        group=group,
        pixels=int(x_norm.size),
        psnr=metrics.psnr(x_hat, x_norm, data_range=1.0),
        ssim=float("nan") if small else metrics.ssim(x_hat, x_norm, data_range=1.0),
        enl_ratio=float("nan") if small else metrics.enl_ratio(recon_intensity, np.where(valid, intensity, np.nan),
                                                                mask=valid),
        epi=float("nan") if min(x_norm.shape) < 3 else metrics.epi(x_hat, x_norm),
        **fidelity,
    )


def model_reconstructor(model: torch.nn.Module, device: str | torch.device = "cpu") -> Reconstruct:
    """Wrap an autoencoder (eval mode, no grad) as a whole-image reconstruction function."""
    model = model.to(device).eval()

    def run(x_norm: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(x_norm, dtype=np.float32))[None, None].to(device)
            out: npt.NDArray[np.float32] = model(x)[0, 0].clamp(0, 1).float().cpu().numpy()
        return out

    return run


@dataclass
class ReferenceImage:
    """An original image ready to score reconstructions against: its raw values, its own preprocessing params,
    the working representation ``x`` with its validity mask, and the linear intensity (the ENL reference)."""

    path: Path
    name: str
    group: str
    raw: npt.NDArray[Any]
    params: PreprocessingParams
    x: npt.NDArray[np.float32]
    valid: npt.NDArray[np.bool_]
    intensity: npt.NDArray[np.float64]

    def score(self, x_hat: npt.NDArray[np.float32], recon_intensity: npt.NDArray[Any] | None = None) -> ImageScore:
        """All metrics of the reconstruction ``x_hat`` (working representation under this image's params);
        ``recon_intensity``, when given, is the reconstruction in linear intensity (see score_reconstruction)."""
        return score_reconstruction(self.x, x_hat, self.intensity, self.valid, self.params.db_lo,
                                    self.params.db_hi, image=self.name, group=self.group,
                                    recon_intensity=recon_intensity)

    def decoded(self, raw: npt.NDArray[Any]) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float64]]:
        """A decoded raster in the original's units -> (x under the original's params, linear intensity)."""
        db, ok = to_db(raw, self.params.units)
        x = normalize_db(db, self.params.db_lo, self.params.db_hi)
        return x, np.asarray(db_to_intensity(np.where(ok, db, -np.inf)), dtype=np.float64)


def load_reference(
    path: str | Path,
    units: str | None = None,
    *,
    clip_percentiles: tuple[float, float] = DEFAULT_CLIP_PERCENTILES,
    name: str | None = None,
    band: int | None = None,
) -> ReferenceImage:
    """Read a whole image (one band) and map it to the working representation under its own (per-image) params."""
    with open_raster(path, band) as reader:
        raw = reader.read()
        nodata = reader.info.nodata
    params = params_for_array(raw, units, clip_percentiles=clip_percentiles, nodata=nodata)
    db, valid = to_db(raw, params.units, nodata)  # what preprocess.forward does, keeping the dB for intensity
    x = normalize_db(db, params.db_lo, params.db_hi)
    intensity = np.asarray(db_to_intensity(np.where(valid, db, 0.0)), dtype=np.float64)
    return ReferenceImage(Path(path), name or Path(path).name, image_group(path), raw, params, x, valid, intensity)


def evaluate_images(
    reconstruct: Reconstruct,
    paths: Iterable[str | Path],
    *,
    units: str | None = None,
    clip_percentiles: tuple[float, float] = DEFAULT_CLIP_PERCENTILES,
) -> list[ImageScore]:
    """Score ``reconstruct`` on every raster in ``paths`` (files or directories)."""
    scores = []
    for path in find_rasters(list(paths)):
        image = load_reference(path, units, clip_percentiles=clip_percentiles)
        scores.append(image.score(reconstruct(image.x)))
    return scores


def summarize(scores: Sequence[ImageScore]) -> dict[str, dict[str, float]]:
    """Mean of each metric over all images and per group. NaN values (e.g. an ENL ratio without a homogeneous
    region) are left out; an infinite PSNR (a lossless image) is kept, so the mean is infinite then."""
    out: dict[str, dict[str, float]] = {}
    groups = {"all": list(scores)}
    for s in scores:
        groups.setdefault(s.group, []).append(s)
    for name, members in groups.items():
        out[name] = {"images": float(len(members))}
        for key in ("psnr", "ssim", "enl_ratio", "epi", *metrics.FIDELITY_METRICS):
            values = np.array([getattr(s, key) for s in members], dtype=np.float64)
            values = values[~np.isnan(values)]
            out[name][key] = float(values.mean()) if values.size else float("nan")
    return out


# ------------------------------------------------------------------------- checkpoints -> report
@dataclass(frozen=True)
class ModelSummary:
    """One trained checkpoint's description and its mean scores."""

    run: str
    model_name: str
    latent_channels: int
    latent_ratio: float
    params: int
    epochs: int
    best_epoch: int
    train_minutes: float
    val_psnr: float
    scores: dict[str, dict[str, float]]


def evaluate_checkpoints(
    checkpoints: Sequence[str | Path],
    data: Sequence[str | Path],
    output_dir: str | Path,
    *,
    baseline_run: str | None = None,
    figure_images: int = 3,
    log: Callable[[str], None] = lambda msg: None,
) -> dict[str, Any]:
    """Evaluate trained checkpoints on whole images; write results.json, results.md and figures to ``output_dir``.

    The run name of a checkpoint is its directory's name. ``baseline_run`` (default: the first checkpoint of model
    ``baseline`` with 16 latent channels, if any) is the reference of the "improvement" column.
    """
    import json
    import platform

    from sarcodec.report import markdown_table, save_reconstruction_figure, save_sweep_plot
    from sarcodec.errors import BadInputError
    from sarcodec.models import AutoencoderBase
    from sarcodec.train.checkpoint import load_checkpoint, model_from_checkpoint

    files = find_rasters(list(data))
    out = results_folder(output_dir, "results.json", "evaluation", create=False)  # created once it all scored
    summaries: list[ModelSummary] = []
    per_image: list[dict[str, Any]] = []
    reconstructions: dict[str, dict[str, npt.NDArray[np.float32]]] = {}
    figure_originals = {f.name: load_reference(f).x for f in _figure_picks(files, figure_images)}
    for path in checkpoints:
        ckpt_path = Path(path) / "best.pth" if Path(path).is_dir() else Path(path)
        ckpt = load_checkpoint(ckpt_path)
        model = model_from_checkpoint(ckpt, str(ckpt_path))
        if not isinstance(model, AutoencoderBase):
            raise BadInputError(f"{ckpt_path}: a codec's training checkpoint; evaluate scores autoencoders (use "
                                "sarcodec benchmark --model RUN/NAME.safetensors for a codec)")
        run = ckpt_path.parent.resolve().name or ckpt_path.stem
        if any(s.run == run for s in summaries):  # two checkpoints of one folder
            run = f"{run}/{ckpt_path.stem}"
        log(f"evaluating {run} ({ckpt_path}) on {len(files)} images")
        reconstruct = model_reconstructor(model)
        scores = evaluate_images(reconstruct, files)
        for name, x_norm in figure_originals.items():
            reconstructions.setdefault(name, {})[run] = reconstruct(x_norm)
        history = _run_history(ckpt_path, ckpt["history"])
        counts = model.count_parameters()
        best = next(h for h in ckpt["history"] if h["epoch"] == ckpt["epoch"])
        summaries.append(ModelSummary(
            run=run, model_name=ckpt["model_name"], latent_channels=int(ckpt["model_config"]["latent_channels"]),
            latent_ratio=float(model.latent_ratio), params=int(counts["total"]),
            epochs=len(history), best_epoch=int(ckpt["epoch"]),
            train_minutes=sum(float(h["seconds"]) for h in history) / 60.0,
            val_psnr=float(best["val_psnr"]), scores=summarize(scores),
        ))
        per_image.extend({"run": run, **s.to_dict()} for s in scores)

    if baseline_run is None:
        baseline_run = next((s.run for s in summaries if s.model_name == "baseline" and s.latent_channels == 16), None)
    elif not any(s.run == baseline_run for s in summaries):  # a column of n/a against a run that is not there
        raise BadInputError(f"baseline {baseline_run!r} is not one of the runs ({', '.join(s.run for s in summaries)})")
    base = next((s for s in summaries if s.run == baseline_run), None)
    results_folder(out, "results.json", "evaluation")
    groups = sorted({g for s in summaries for g in s.scores})
    paired = _paired_psnr(per_image, baseline_run) if base else {}
    rows = []
    for s in summaries:
        a = s.scores["all"]
        rows.append({
            "run": s.run, "model": s.model_name, "params": f"{s.params / 1e6:.2f} M", "latent_ratio": s.latent_ratio,
            "psnr": a["psnr"], "ssim": a["ssim"], "enl_ratio": a["enl_ratio"], "epi": a["epi"],
            "delta": a["psnr"] - base.scores["all"]["psnr"] if base else float("nan"),
            "s1_psnr": s.scores.get("sentinel1", {}).get("psnr", float("nan")),
            "val_psnr": s.val_psnr, "train_minutes": s.train_minutes, "epochs": f"{s.best_epoch}/{s.epochs}",
            **paired.get(s.run, {}),
        })
    columns = [("run", "Run", 0), ("model", "Model", 0), ("params", "Params", 0), ("latent_ratio", "Latent ratio", 0),
               ("psnr", "PSNR (dB)", 2), ("ssim", "SSIM", 3), ("enl_ratio", "ENL ratio", 2), ("epi", "EPI", 3),
               ("delta", f"Δ PSNR vs {baseline_run or 'baseline'} (dB)", 2), ("wins", "wins", 0),
               ("wilcoxon_p", "p (paired)", 4), ("s1_psnr", "PSNR S1 (dB)", 2),
               ("val_psnr", "val PSNR (dB)", 2), ("train_minutes", "train (min)", 1), ("epochs", "best/epochs", 0)]
    group_rows = [{"run": s.run, **{g: s.scores[g]["psnr"] for g in groups if g in s.scores}} for s in summaries]
    hardware = f"{platform.machine()} CPU, {os.cpu_count()} cores" if not torch.cuda.is_available() \
        else torch.cuda.get_device_name(0)
    md = [
        f"Evaluated on {len(files)} images ({', '.join(str(d) for d in data)}), whole images, per-image clip bounds "
        f"(0.1/99.9 percentiles of dB). Metrics per SPEC; means over images. Evaluation hardware: {hardware}. "
        f"`wins`: images where the run's PSNR is above {baseline_run or 'the baseline'}'s; `p`: two-sided Wilcoxon "
        "signed-rank test of the per-image PSNR differences (paired over the same images).",
        "",
        markdown_table(rows, columns),
        "",
        "PSNR (dB) per image group:",
        "",
        markdown_table(group_rows, [("run", "Run", 0)] + [(g, g, 2) for g in groups]),
        "",
        "Original units (linear intensity of the reconstruction mapped back from x_norm, valid pixels; SPEC "
        "'Original-unit fidelity'; means over images):",
        "",
        markdown_table([{"run": s.run, **{k: s.scores["all"][k] for k in metrics.FIDELITY_METRICS}} for s in summaries],
                       [("run", "Run", 0), ("rmse_db", "RMSE (dB)", 2), ("bias_db", "bias (dB)", 2),
                        ("hom_bias_db", "homogeneous bias (dB)", 2), ("peak_db", "point-target error (dB)", 2),
                        ("cfar_f1", "CFAR F1", 2)]),
    ]
    sweep = [{"label": s.run, "latent_ratio": s.latent_ratio, "psnr": s.scores["all"]["psnr"]}
             for s in summaries if s.model_name == "baseline"]
    if len(sweep) > 1:
        save_sweep_plot(sweep, "latent_ratio", "psnr", out / "latent_ratio_sweep.png",
                        "input pixels per latent value (latent ratio)", "PSNR on the dev set (dB)",
                        "baseline autoencoder: latent-ratio sweep")
        md += ["", "![latent-ratio sweep](latent_ratio_sweep.png)"]
    for name, recs in reconstructions.items():
        fig = out / f"recon_{Path(name).stem}.png"
        save_reconstruction_figure(figure_originals[name], recs, fig, title=name)
        md += ["", f"![{name}]({fig.name})"]
    (out / "results.md").write_text("\n".join(md) + "\n")
    result = {"summaries": [asdict(s) for s in summaries], "per_image": per_image, "baseline_run": baseline_run,
              "hardware": hardware, "images": [str(f) for f in files]}
    (out / "results.json").write_text(json.dumps(result, indent=1, default=float))
    return result


def _paired_psnr(per_image: Sequence[dict[str, Any]], baseline_run: str | None) -> dict[str, dict[str, Any]]:
    """Per run: images whose PSNR beats the baseline run's on the same image, and the two-sided Wilcoxon
    signed-rank p-value of the per-image differences."""
    import warnings

    from scipy.stats import wilcoxon

    base = {r["image"]: r["psnr"] for r in per_image if r["run"] == baseline_run}
    out: dict[str, dict[str, Any]] = {}
    for run in dict.fromkeys(r["run"] for r in per_image):
        if run == baseline_run:
            continue
        d = np.array([r["psnr"] - base[r["image"]] for r in per_image if r["run"] == run and r["image"] in base])
        d = d[np.isfinite(d)]
        p = float("nan")
        if d.size >= 2 and np.any(d != 0):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                p = float(wilcoxon(d).pvalue)
        out[run] = {"wins": f"{int((d > 0).sum())}/{d.size}", "wilcoxon_p": p}
    return out


def _run_history(ckpt_path: Path, history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The whole run's history: last.pth beside best.pth knows the epochs after the best one."""
    import json

    full = ckpt_path.parent / "history.json"
    if full.is_file():
        try:
            data = json.loads(full.read_text())
            if isinstance(data, list) and data:
                return data
        except (OSError, ValueError):
            pass
    return history


def _figure_picks(files: Sequence[Path], n: int) -> list[Path]:
    """Up to ``n`` images for figures, one per group first (Sentinel-1 first)."""
    picks: list[Path] = []
    for group, _ in DEFAULT_GROUPS:
        first = next((f for f in files if image_group(f) == group), None)
        if first is not None:
            picks.append(first)
    picks.extend(f for f in files if f not in picks)  # then the others, in order
    return picks[:n]
