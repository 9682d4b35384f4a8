"""The ``sarcodec`` command line: argument parsing and error-to-exit-code mapping only.

Every failure sarcodec expects becomes one line on stderr and one exit code, the same for every command
(set ``SARCODEC_DEBUG=1`` to see the traceback of an unexpected error):

==== ==========================================================================================
0    success
1    unexpected internal error
2    bad input: a missing or unreadable input, an invalid option value or usage
3    a damaged, truncated or foreign file (.sarc, dataset, checkpoint), or a header value out of range
4    incompatible model: the file needs a model this installation does not have
5    the output cannot be written (exists without --overwrite, unwritable, would overwrite an input)
6    ``batch``: some scenes failed (the others were written; OUTDIR/manifest.csv says which and why)
130  interrupted (Ctrl-C)
129  stopped by SIGHUP (the terminal closed), unless ignored (``nohup``)
143  stopped by SIGTERM (``kill``, ``timeout``, a job scheduler's stop)
==== ==========================================================================================

SIGTERM and SIGHUP stop a command as Ctrl-C does (:func:`_stop_on_signals`), so an interrupted ``compress`` or
``decompress`` leaves neither its output nor its hidden ``.partial`` file behind.

Library errors name keyword arguments (``overwrite=True``); :func:`_cli_wording` turns them into the flags.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from sarcodec.version import __version__
from sarcodec.errors import BadInputError, SarcodecError
from sarcodec.io.sarc import DEFAULT_OVERLAP, DEFAULT_TILE
from sarcodec.preprocess import UNITS


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one line (no usage dump) with exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


#: Keyword-argument wording of library errors -> the command line's flags.
_CLI_WORDING = (("overwrite=True", "--overwrite"), ("band=N", "--band N"), ("model=PATH", "--model PATH"))


def _cli_wording(message: str) -> str:
    for api, flag in _CLI_WORDING:
        message = message.replace(api, flag)
    return message


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text}")
    return value


# ------------------------------------------------------------------------------ prepare
def _add_prepare(sub: Any) -> None:
    p = sub.add_parser(
        "prepare",
        help="cut SAR scenes into a patch dataset split by scene",
        description="Cut rasters (GeoTIFF/.npy files or directories of them) into normalised patches, "
        "split train/val/test by scene, and write DATASET/manifest.json plus memory-mappable .npy files.",
    )
    p.add_argument("inputs", nargs="+", metavar="SCENES_OR_DIRS", help="raster files or directories (searched recursively)")
    p.add_argument("-o", "--output", required=True, metavar="DATASET", help="output directory (must not exist or be empty)")
    p.add_argument("--patch-size", type=_positive_int, default=64, help="patch side in pixels (default 64)")
    p.add_argument("--stride", type=_positive_int, default=None, help="grid step in pixels (default: patch size, no overlap)")
    p.add_argument("--units", choices=UNITS, default=None, help="units of the input values (default: inferred per file, rule printed)")
    p.add_argument("--band", type=_positive_int, default=None, help="1-based band to read from multi-band rasters")
    p.add_argument("--clip-percentiles", type=float, nargs=2, default=(0.1, 99.9), metavar=("LO", "HI"),
                   help="dB percentiles used as clip bounds (default 0.1 99.9)")
    p.add_argument("--clip-scope", choices=("image", "train"), default="image",
                   help="clip bounds per image, or one pair over all training images (default image)")
    p.add_argument("--split", type=float, nargs=3, default=(0.8, 0.1, 0.1), metavar=("TRAIN", "VAL", "TEST"),
                   help="scene split ratios, scaled to sum to 1 (default 0.8 0.1 0.1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the scene split and the fraction subset")
    p.add_argument("--fraction", type=float, default=1.0, help="keep each patch with this probability (the seed study used 0.2)")
    p.add_argument("--max-invalid", type=float, default=0.1, help="reject patches with more invalid pixels than this fraction")
    p.add_argument("--min-std", type=float, default=0.005, help="reject near-constant patches (std of x_norm below this)")
    p.add_argument("--scene-regex", action="append", default=None, metavar="REGEX",
                   help="regex with a group (?P<scene>...) deriving the scene id from the file name; repeatable, "
                   "first match wins (default: OPERA burst id, then Sentinel-1 product name, else the file stem)")
    p.add_argument("--overwrite", action="store_true", help="replace DATASET if it is an existing sarcodec dataset")
    p.set_defaults(func=_cmd_prepare)


def _cmd_prepare(args: argparse.Namespace) -> int:
    from sarcodec.data.prepare import PrepareConfig, prepare_dataset

    config = PrepareConfig(
        patch_size=args.patch_size,
        stride=args.stride,
        units=args.units,
        band=args.band,
        clip_percentiles=tuple(args.clip_percentiles),
        clip_scope=args.clip_scope,
        split_ratios=tuple(args.split),
        seed=args.seed,
        fraction=args.fraction,
        max_invalid_fraction=args.max_invalid,
        min_std=args.min_std,
        scene_regex=tuple(args.scene_regex or ()),
    )
    manifest = prepare_dataset(args.inputs, args.output, config, overwrite=args.overwrite, log=_log)
    print(_dataset_summary(manifest, Path(args.output)))
    return 0


# ------------------------------------------------------------------------------ train
def _add_train(sub: Any) -> None:
    p = sub.add_parser(
        "train",
        help="train an autoencoder or a codec from a YAML config",
        description="Train the model a YAML config describes (see configs/; configs/codec/ for the rate-distortion "
        "codecs) on a dataset made by 'sarcodec prepare'. Writes best.pth, last.pth, history.json, config.yaml and "
        "TensorBoard events to the output directory; a codec run also writes RUN_NAME.safetensors (for "
        "'sarcodec compress --model'). "
        "Runs distributed (DDP) under torchrun: 'torchrun --nproc_per_node=N -m sarcodec train CONFIG ...'.",
    )
    p.add_argument("config", metavar="CONFIG", help="YAML config file (e.g. configs/residual_v1_c16.yaml)")
    p.add_argument("--data", metavar="DATASET", default=None, help="dataset directory (sets data.root)")
    p.add_argument("--output-dir", metavar="DIR", default=None, help="where the run's files go (default runs/RUN_NAME)")
    p.add_argument("--epochs", type=_positive_int, default=None, help="number of epochs (sets epochs)")
    p.add_argument("--limit-batches", type=_positive_int, default=None, metavar="N",
                   help="at most N train and N val batches per epoch (quick checks)")
    p.add_argument("--device", default=None, help="auto, cpu, cuda or cuda:N (sets device)")
    p.add_argument("--resume", metavar="CHECKPOINT", default=None,
                   help="continue from a last.pth, or 'auto': the output directory's last.pth if there is one")
    p.add_argument("--overwrite", action="store_true", help="start afresh even if the output directory holds a run")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="override a config value by its dotted key, value parsed as YAML "
                   "(e.g. --set optim.lr=3e-4 --set data.batch_size=8); repeatable")
    p.set_defaults(func=_cmd_train)


def _cmd_train(args: argparse.Namespace) -> int:
    from sarcodec.train import load_config, train

    flags = {"data.root": args.data, "output_dir": args.output_dir, "epochs": args.epochs,
             "limit_batches": args.limit_batches, "device": args.device}
    overrides: list[Any] = [*args.overrides, *((k, v) for k, v in flags.items() if v is not None)]
    config = load_config(args.config, overrides)
    result = train(config, resume=args.resume, overwrite=args.overwrite, log=_log)
    if result.is_main:
        status = "stopped early" if result.stopped_early else "done"
        print(f"{status}: {result.epochs_completed} epoch(s); best epoch {result.best_epoch} "
              f"(val_loss {result.best_val_loss:.5f}); checkpoints in {result.output_dir}")
    return 0


# ------------------------------------------------------------------------------ info
def _add_info(sub: Any) -> None:
    p = sub.add_parser("info", help="describe a .sarc file, a dataset directory or a checkpoint",
                       description="Print what is in a compressed .sarc file, a dataset made by 'sarcodec prepare', "
                       "or a training checkpoint (.pth).")
    p.add_argument("target", help="a .sarc file, a dataset directory, a checkpoint file, or a training run's directory")
    p.add_argument("--preview", metavar="PNG", default=None, help="also save a grid of sample patches per split as PNG")
    p.set_defaults(func=_cmd_info)


def _cmd_info(args: argparse.Namespace) -> int:
    from sarcodec.data.prepare import load_manifest

    target = Path(args.target)
    if target.suffix == ".sarc":
        return _cmd_info_sarc(target)
    if target.suffix == ".safetensors" or target.name in _shipped_codecs():
        return _cmd_info_codec(str(target))
    if not (target.exists() or target.suffix in (".pth", ".pt")):
        raise BadInputError(f"{target}: no such file or folder")
    if target.is_file() and target.suffix.lower() in (".tif", ".tiff", ".npy", ".jp2", ".png"):
        raise BadInputError(f"{target}: info describes .sarc files, codecs, checkpoints and patch datasets, not "
                            "rasters (gdalinfo does)")
    if target.is_file() or target.suffix in (".pth", ".pt"):
        return _cmd_info_checkpoint(target)
    if target.is_dir() and not (target / "manifest.json").exists() and (target / "best.pth").is_file():
        return _cmd_info_checkpoint(target / "best.pth")  # a training run's directory
    manifest = load_manifest(target)
    print(_dataset_summary(manifest, target))
    if args.preview:
        from sarcodec.data.preview import save_patch_preview

        save_patch_preview(target, args.preview)
        print(f"preview: {args.preview}")
    return 0


def _cmd_info_sarc(path: Path) -> int:
    from sarcodec.codec.info import read_info

    f = read_info(path)
    params = f["preprocessing_params"]
    lines = [
        f"{path}: .sarc, {f['file_bytes']} bytes, {f['bpp']:.4f} bpp "
        f"(compression ratio {np.dtype(f['dtype']).itemsize * 8 / f['bpp']:.1f} vs {f['dtype']})",
        f"  image: {f['height']} x {f['width']} {f['dtype']} {f['units']} (band {f['band']}), nodata {f['nodata']}",
        *(_bound_lines(f) if f.get("bound") else [
            f"  model: {f['model']['name']} ({f['model']['codec']}), sha256 {f['model']['sha256'][:16]}..., quality {f['quality']:g}",
            f"  working representation: dB clipped to [{params['db_lo']:.2f}, {params['db_hi']:.2f}] "
            f"({params['clip_percentiles'][0]:g}-{params['clip_percentiles'][1]:g} percentiles, per {params['clip_scope']})"]),
        f"  tiles: {f['n_tiles']} of {f['tile']['size']} px, overlap {f['tile']['overlap']} px",
        f"  format {f['format_version']}: " + (
            f"targets and pixels beyond the clip kept to {f['side']['step_hi'] / 2:g} dB (dark ones to "
            f"{f['side']['step_lo'] / 2:g} dB), mean intensity kept per {f['side']['bias_block']} px block"
            + (", speckle stored per block and synthesized (decompress --no-speckle leaves it out)"
               if f["side"].get("speckle") else "")
            + (", tiles blended with their corrections in linear intensity" if f["format_version"] >= 6 else "")
            if "side" in f else "bounded tiles (no network)" if f.get("bound") else
            "pixels beyond the clip range are not kept, no radiometric correction"),
        f"  georeferencing: {'CRS ' + _crs_name(f['crs']) if f['crs'] else 'no CRS'}, "
        f"{'transform ' + str(f['transform']) if f['transform'] else 'no transform'}"
        + (f", {len(f['gcps']['points'])} ground control points ({_crs_name(f['gcps']['crs'])})" if f.get("gcps") else ""),
        f"  written by {f.get('created_by', '?')}" + (f", entropy coder {f['coder']}" if f.get("coder") else ""),
    ]
    print("\n".join(lines))
    return 0


def _bound_lines(f: dict[str, Any]) -> list[str]:
    bound = f["bound"]
    if bound["units"] == "input" and bound["max_error"] == 0:
        return ["  mode: lossless (every valid pixel exactly as in the original)"]
    unit = "dB (a relative error on intensity)" if bound["units"] == "db" else f"{f['units']} (the raster's units)"
    return [f"  mode: near-lossless, every valid pixel within {bound['max_error']:g} {unit} of the original "
            "(checked by the encoder)"]


def _shipped_codecs() -> list[str]:
    from sarcodec.codec.registry import shipped_codecs

    return shipped_codecs()


def _cmd_info_codec(name: str) -> int:
    from sarcodec.codec.registry import describe_codec

    print(describe_codec(name))
    return 0


def _crs_name(wkt: str) -> str:
    try:
        from rasterio.crs import CRS

        crs = CRS.from_user_input(wkt)
        return crs.to_string() or "(custom)"
    except Exception:  # a CRS GDAL cannot parse is still shown, shortened
        return wkt[:60]


# ------------------------------------------------------------------------------ compress / decompress
def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text}") from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text}")
    return value


def _add_compress(sub: Any) -> None:
    p = sub.add_parser(
        "compress",
        help="compress a SAR raster into a .sarc file",
        description="Compress one band of a GeoTIFF or .npy raster with a learned codec into a .sarc file "
        "(tiles with overlap, streamed: any scene size). Prints the size, bitrate and compression ratio.",
    )
    p.add_argument("input", help="GeoTIFF or .npy raster")
    p.add_argument("-o", "--output", default=None, help="output .sarc (default: INPUT with .sarc suffix)")
    rate = p.add_mutually_exclusive_group()
    rate.add_argument("-q", "--quality", type=float, default=None,
                      help="quality level 1 (smallest) .. 8 (best) of the model; default 4 (about 1 bpp on Sentinel-1)")
    rate.add_argument("--bpp", type=_positive_float, default=None, help="target bits per pixel instead of a quality")
    rate.add_argument("--max-error", type=_non_negative_float, default=None, metavar="E",
                      help="near-lossless: every valid pixel decodes within E dB of the original (guaranteed; "
                      "E in the raster's own units with --max-error-units input)")
    rate.add_argument("--lossless", action="store_true", help="the exact values back (integer rasters, e.g. uint16 DN)")
    p.add_argument("--max-error-units", choices=("db", "input"), default=None,
                   help="units of --max-error: db (default; the same as a relative error on intensity) or input")
    p.add_argument("--model", default=None, help="shipped codec name (default hyperprior) or a .safetensors codec file")
    p.add_argument("--units", choices=UNITS, default=None, help="units of the input values (default: inferred, printed)")
    p.add_argument("--band", type=_positive_int, default=None, help="1-based band of a multi-band raster")
    p.add_argument("--nodata", type=float, default=None, help="nodata value (default: the raster's own)")
    p.add_argument("--tile-size", type=_positive_int, default=DEFAULT_TILE,
                   help=f"tile core size in pixels (default {DEFAULT_TILE})")
    p.add_argument("--overlap", type=int, default=DEFAULT_OVERLAP,
                   help=f"tile overlap in pixels on each side that has a neighbour (default {DEFAULT_OVERLAP})")
    p.add_argument("--device", default="auto", help="auto (GPU when present), cpu or cuda")
    p.add_argument("--runtime", choices=("auto", "torch", "onnx"), default="auto",
                   help="auto (default): on the CPU without PyTorch (NumPy and ONNX Runtime) when the model allows "
                   "it, else PyTorch; torch: always PyTorch; onnx: only without PyTorch. The same symbols either way")
    p.add_argument("--speckle", action="store_true",
                   help="also store the speckle the codec smooths away (a few bytes per 32 x 32 block), which "
                   "decompress synthesizes back: the decoded image keeps the original's speckle statistics (ENL) "
                   "at a cost in PSNR (lossy modes; .sarc format 5, 6 with several tiles)")
    p.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    p.set_defaults(func=_cmd_compress)


def _cmd_compress(args: argparse.Namespace) -> int:
    from sarcodec.codec.api import compress
    from sarcodec.codec.registry import DEFAULT_CODEC

    output = _output_file(args.output) or Path(args.input).with_suffix(".sarc")
    if args.max_error_units is not None and args.max_error is None:
        raise BadInputError("--max-error-units needs --max-error E (alone it would be ignored)")
    args.max_error_units = args.max_error_units or "db"
    r = compress(args.input, output, quality=args.quality, bpp=args.bpp, max_error=args.max_error,
                 max_error_units=args.max_error_units, lossless=args.lossless, model=args.model or DEFAULT_CODEC,
                 units=args.units, band=args.band, nodata=args.nodata, tile_size=args.tile_size,
                 overlap=args.overlap, device=args.device, runtime=args.runtime, overwrite=args.overwrite,
                 progress=True, speckle=args.speckle)
    if args.units is None:
        _log(f"units: {r.units} ({r.units_rule}; override with --units)")
    if r.note:
        _log(f"note: {r.note}")
    if r.mode == "lossy":
        mode = f"model {r.model} quality {r.quality:g}{' with speckle' if args.speckle else ''}"
    elif r.mode == "lossless":
        mode = "lossless"
    else:
        mode = f"near-lossless, every valid pixel within {r.max_error:g} {'dB' if args.max_error_units == 'db' else r.units}"
    print(f"{output}: {r.bytes} bytes, {r.bpp:.4f} bpp, {r.height} x {r.width} {r.units}, {mode}, "
          f"{r.seconds:.2f} s ({r.height * r.width / 1e6 / max(r.seconds, 1e-9):.2f} MP/s)")
    return 0


def _add_decompress(sub: Any) -> None:
    p = sub.add_parser(
        "decompress",
        help="decode a .sarc file to a GeoTIFF",
        description="Decode a .sarc file to a GeoTIFF in the input's units and dtype, with CRS, transform and "
        "nodata restored. The whole file is checked first; a damaged file writes nothing.",
    )
    p.add_argument("input", help=".sarc file")
    p.add_argument("-o", "--output", default=None, help="output GeoTIFF (default: INPUT with .decoded.tif suffix)")
    p.add_argument("--cog", action="store_true", help="write a Cloud-Optimized GeoTIFF (DEFLATE)")
    p.add_argument("--compare", default=None, metavar="ORIGINAL",
                   help="also score the result against ORIGINAL (x_norm and original-unit metrics) beside JPEG 2000 at "
                   "the same bpp, on the same pixels and on the full range")
    p.add_argument("--band", type=_positive_int, default=None,
                   help="band of ORIGINAL to compare against (default: the band the file was written from)")
    p.add_argument("--model", default=None, help="the .safetensors codec file, for files written with a model that is not shipped")
    p.add_argument("--device", default="cpu",
                   help="cpu (default: the same pixels on every CPU), or cuda / auto to opt in to a GPU (the same "
                   "symbols, pixels within float rounding)")
    p.add_argument("--runtime", choices=("auto", "torch", "onnx"), default="auto",
                   help="auto (default): on the CPU, decode without PyTorch when the weights allow it (NumPy and ONNX "
                        "Runtime: the same symbols, pixels within float rounding of PyTorch's, faster start-up); "
                        "torch: always PyTorch; onnx: never PyTorch")
    p.add_argument("--html", default=None, metavar="PAGE.html",
                   help="with --compare: also write an offline viewer page (original, sarcodec and JPEG 2000 at the "
                   "same bpp, zoom, swipe, difference) to PAGE.html and its PAGE_files folder")
    p.add_argument("--srcwin", type=int, nargs=4, default=None, metavar=("XOFF", "YOFF", "XSIZE", "YSIZE"),
                   help="decode only this part of the raster, in pixels as gdal_translate -srcwin (first column, first "
                   "row, width, height): only the tiles it needs are decoded, the pixels are those of the whole "
                   "file there, and the GeoTIFF is georeferenced at the part's first pixel")
    p.add_argument("--no-speckle", action="store_true",
                   help="for a file written with compress --speckle: leave its speckle out (the smooth image the "
                   "network decodes, with the same block means; other files decode the same either way)")
    p.add_argument("--overwrite", action="store_true", help="replace OUTPUT (and PAGE.html) if it exists")
    p.set_defaults(func=_cmd_decompress)


def _cmd_decompress(args: argparse.Namespace) -> int:
    from sarcodec.codec.api import decompress

    output = _output_file(args.output) or Path(args.input).with_suffix(".decoded.tif")
    if output.suffix.lower() not in (".tif", ".tiff", ".gtif", ".gtiff"):
        raise BadInputError(f"{output}: decompress writes a GeoTIFF; name it .tif or .tiff")
    if args.band is not None and not args.compare:
        raise BadInputError("--band needs --compare ORIGINAL (it chooses the band of ORIGINAL to compare against)")
    options = {"model": args.model, "cog": args.cog, "device": args.device, "runtime": args.runtime,
               "overwrite": args.overwrite, "progress": True, "speckle": not args.no_speckle}
    if args.srcwin is not None:
        if args.compare:
            raise BadInputError("--srcwin decodes part of the raster; --compare scores the whole of it: use one")
        options["srcwin"] = tuple(args.srcwin)
    if args.compare:
        from sarcodec.bench.compare import COMPARE_COLUMNS, decompress_and_compare
        from sarcodec.report import markdown_table

        r, rows = decompress_and_compare(args.input, output, args.compare, band=args.band, html=args.html,
                                         **options)
    elif args.html:
        raise BadInputError("--html needs --compare ORIGINAL (the page shows the original beside the decoded image)")
    else:
        r, rows = decompress(args.input, output, **options), []
    print(f"{output}: {r.height} x {r.width} {r.dtype}{' (COG)' if args.cog else ''}, {r.seconds:.2f} s "
          f"({r.height * r.width / 1e6 / max(r.seconds, 1e-9):.2f} MP/s)")
    if rows:
        print(markdown_table(rows, COMPARE_COLUMNS))
    return 0


def _cmd_info_checkpoint(path: Path) -> int:
    from sarcodec.train import load_checkpoint

    ckpt = load_checkpoint(path)
    print(_checkpoint_summary(ckpt, path))
    return 0


def _checkpoint_summary(ckpt: dict[str, Any], path: Path) -> str:
    kwargs = ", ".join(f"{k}={v}" for k, v in ckpt["model_config"].items())
    lines = [f"checkpoint {path}: model {ckpt['model_name']}({kwargs})"]
    counts = ckpt.get("parameter_counts")
    if counts:
        lines.append(f"  parameters: {counts['total']:,} (encoder {counts['encoder']:,}, decoder {counts['decoder']:,})")
    config = ckpt.get("config") or {}
    if "epoch" in ckpt:
        lines.append(f"  run {config.get('run_name', '?')}: epoch {ckpt['epoch']}, step {ckpt.get('step', '?')}, "
                     f"best val_loss {ckpt.get('best_val_loss', float('nan')):.5f} at epoch {ckpt.get('best_epoch', '?')}, "
                     f"{ckpt.get('epochs_without_improvement', '?')} epoch(s) since")
    history = ckpt.get("history") or []
    if history:
        h = history[-1]
        lines.append(f"  epoch {h['epoch']}: train_loss {h['train_loss']:.5f}, val_loss {h['val_loss']:.5f}, "
                     f"val_psnr {h['val_psnr']:.2f} dB, val_ssim {h['val_ssim']:.4f}, lr {h['lr']:.2e}")
    dataset = ckpt.get("dataset") or {}
    if dataset:
        counts = {k: v["patches"] for k, v in dataset.get("counts", {}).items() if isinstance(v, dict) and "patches" in v}
        lines.append(f"  dataset {dataset.get('root')}: patch {dataset.get('patch_size')} px, "
                     + ", ".join(f"{k} {v}" for k, v in counts.items()))
    pp = ckpt.get("preprocessing_params")
    if pp:
        lines.append("  preprocessing: " + ", ".join(f"{k}={v}" for k, v in pp.items()))
    if ckpt.get("world_size", 1) > 1:
        lines.append(f"  trained on {ckpt['world_size']} processes")
    return "\n".join(lines)


def _dataset_summary(manifest: dict[str, Any], root: Path) -> str:
    counts = manifest["counts"]
    lines = [f"dataset {root}: patch {manifest['patch_size']} px, stride {manifest['stride']} px"]
    for name in ("train", "val", "test"):
        c = counts[name]
        lines.append(f"  {name:5s}: {c['patches']:7d} patches from {c['images']:4d} images of {c['scenes']:3d} scenes")
    r = counts["rejected"]
    lines.append(f"  rejected: {r['invalid']} mostly-invalid, {r['constant']} near-constant patches; "
                 f"{r['too_small_images']} images smaller than a patch")
    pp = manifest["preprocessing_params"]
    lines.append(f"  clip: {pp['clip_percentiles'][0]}-{pp['clip_percentiles'][1]} percentiles of dB per {pp['clip_scope']}")
    shared = set(manifest["splits"]["train"]) & (set(manifest["splits"]["val"]) | set(manifest["splits"]["test"]))
    shared |= set(manifest["splits"]["val"]) & set(manifest["splits"]["test"])
    lines.append(f"  scenes shared between splits: {len(shared)}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------ main
# ------------------------------------------------------------------------------ evaluate
def _add_evaluate(sub: Any) -> None:
    p = sub.add_parser(
        "evaluate",
        help="score trained checkpoints on whole SAR images (table, sweep plot, reconstructions)",
        description="Reconstruct every image of --data with each checkpoint and score it with the SPEC's metrics "
        "(PSNR, SSIM, ENL ratio, EPI); writes results.md, results.json and figures to --output.",
    )
    p.add_argument("checkpoints", nargs="+", metavar="CHECKPOINT", help="best.pth files or run directories")
    p.add_argument("--data", nargs="+", default=["../shared/data/sar/dev"], metavar="PATH",
                   help="images or directories to evaluate on (default ../shared/data/sar/dev)")
    p.add_argument("-o", "--output", default="results/evaluation", metavar="DIR", help="output directory")
    p.add_argument("--baseline", default=None, metavar="RUN", help="run name that the improvement column refers to")
    p.add_argument("--figures", type=_non_negative_int, default=3, metavar="N",
                   help="images shown in reconstruction figures")
    p.set_defaults(func=_cmd_evaluate)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from sarcodec.evaluate import evaluate_checkpoints

    evaluate_checkpoints(args.checkpoints, args.data, args.output, baseline_run=args.baseline,
                         figure_images=args.figures, log=_log)
    print((Path(args.output) / "results.md").read_text())
    return 0


# ------------------------------------------------------------------------------ benchmark
def _add_benchmark(sub: Any) -> None:
    p = sub.add_parser(
        "benchmark",
        help="learned codecs vs JPEG 2000, HTJ2K and JPEG XL on SAR scenes (CSV/JSON, plots, report)",
        description="Sweep every codec over its rate setting on each image (same working representation, same "
        "metrics), then write results.csv/json, RD plots, a gallery and report.md with BD-rate/BD-PSNR against "
        "JPEG 2000 per image group.",
    )
    p.add_argument("inputs", nargs="+", metavar="SCENES", help="raster files or directories")
    p.add_argument("-o", "--output", default="results/benchmark", metavar="DIR", help="output directory")
    p.add_argument("--codecs", nargs="+", default=None, metavar="NAME",
                   help="classical codecs: jpeg2000 htj2k jpegxl (default all; jpeg2000 is always run as the anchor)")
    p.add_argument("--models", nargs="*", default=None, metavar="MODEL",
                   help="learned codecs: shipped names or .safetensors files (default: the shipped models less "
                        "the earlier defaults kept for decoding, NAME_vN)")
    p.add_argument("--checkpoint", nargs="*", default=[], metavar="PTH",
                   help="seed-study checkpoints whose latents are quantized and entropy-coded")
    p.add_argument("--units", choices=UNITS, default=None, help="units of the inputs (default: inferred)")
    p.add_argument("--bd-range", type=float, nargs=2, default=(0.25, 2.0), metavar=("LO", "HI"),
                   help="bpp range of the BD metrics (default 0.25 2)")
    p.add_argument("--near-lossless", action="store_true",
                   help="instead: file size at a guaranteed error bound against LERC_ZSTD/LERC_DEFLATE, and lossless "
                   "against ZSTD/DEFLATE with predictor, JPEG XL and JPEG 2000 lossless (near_lossless.md)")
    p.add_argument("--bounds", type=_positive_float, nargs="+", default=None, metavar="DB",
                   help="bounds of --near-lossless in dB (default 0.1 0.25 0.5 1)")
    p.add_argument("--html", action="store_true",
                   help="also write report.html, the offline viewer page (see `sarcodec report`)")
    p.add_argument("--speckle", action="store_true",
                   help="also run each learned codec as written by compress --speckle (named MODEL+speckle)")
    p.set_defaults(func=_cmd_benchmark)


def _add_serve(sub: Any) -> None:
    p = sub.add_parser(
        "serve",
        help="run the codec as an HTTP service (FastAPI + uvicorn)",
        description="POST /compress (GeoTIFF upload in the multipart field 'file', query parameters as compress's "
        "options) returns the .sarc; POST /decompress returns the GeoTIFF; POST /info a file's header; GET /info, "
        "/healthz, /metrics (Prometheus). Limits and the token come from SARCODEC_MAX_UPLOAD_MB, SARCODEC_MAX_PIXELS, "
        "SARCODEC_JOBS, SARCODEC_QUEUE, SARCODEC_UPLOAD_IDLE_S, SARCODEC_UPLOAD_MIN_RATE, SARCODEC_API_TOKEN, "
        "SARCODEC_TMPDIR (the options below win).",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 in a container)")
    p.add_argument("--port", type=_positive_int, default=8000, help="port (default 8000)")
    p.add_argument("--jobs", type=_positive_int, default=None, help="requests coding at once (default 1)")
    p.add_argument("--queue", type=int, default=None, help="requests waiting beyond --jobs before 503 (default 8)")
    p.add_argument("--max-upload-mb", type=_positive_float, default=None, help="upload limit in MiB (default 4096)")
    p.add_argument("--max-pixels", type=_positive_int, default=None, help="pixel limit per image (default 1e9)")
    p.set_defaults(func=_cmd_serve)


def _cmd_serve(args: argparse.Namespace) -> int:
    from sarcodec.deploy.serve import ServeConfig, serve

    config = ServeConfig.from_env(
        jobs=args.jobs, queue=args.queue, max_pixels=args.max_pixels,
        max_upload_bytes=int(args.max_upload_mb * 2**20) if args.max_upload_mb else None)
    serve(args.host, args.port, config, log=_log)
    return 0


def _add_export(sub: Any) -> None:
    p = sub.add_parser(
        "export",
        help="export a codec's networks to ONNX",
        description="Write the codec's transforms (analysis, synthesis; hyper_analysis and hyper_synthesis for the "
        "hyperprior) as ONNX graphs (opset 17, dynamic batch/height/width) and manifest.json (gains per quality, "
        "padding, SHA-256s, how the pieces fit) to DIR. Entropy coding stays in Python.",
    )
    p.add_argument("model", nargs="?", default=None,
                   help="shipped codec name (default hyperprior) or a .safetensors codec file")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="output folder")
    p.add_argument("--overwrite", action="store_true", help="write into DIR even if it is not empty")
    p.set_defaults(func=_cmd_export)


def _cmd_export(args: argparse.Namespace) -> int:
    from sarcodec.codec.onnx import export_codec
    from sarcodec.codec.registry import DEFAULT_CODEC

    manifest = export_codec(args.model or DEFAULT_CODEC, args.output, overwrite=args.overwrite)
    for name, graph in manifest["graphs"].items():
        print(f"{Path(args.output) / graph['file']}: {name}")
    print(f"{Path(args.output) / 'manifest.json'}: model {manifest['model']} ({manifest['model_sha256'][:12]}), "
          f"{manifest['num_levels']} quality levels, opset {manifest['opset']}")
    return 0


def _add_report(sub: Any) -> None:
    p = sub.add_parser(
        "report",
        help="offline HTML viewer page of a benchmark run",
        description="Write RESULTS_DIR/report.html (and report_files/): per image the original, sarcodec and JPEG "
        "2000 at the same bpp in dB, side by side or with a swipe, synchronized zoom and pan to full resolution, "
        "adjustable dB limits, the difference image, the benchmark's numbers, the tiles with the largest error "
        "first, and rate-distortion curves per group. No network needed to view it.",
    )
    p.add_argument("results", help="output folder of `sarcodec benchmark` (with results.json)")
    p.add_argument("--inputs", nargs="+", default=(), metavar="PATH",
                   help="the benchmark's inputs, if results.json's source paths are not valid here")
    p.add_argument("-o", "--output", default=None, help="page to write (default: RESULTS/report.html)")
    p.add_argument("--bpp", type=_positive_float, nargs="+", default=None, metavar="BPP",
                   help="operating points per image: the sarcodec setting nearest each (default 0.5 1 2)")
    p.add_argument("--model", default=None,
                   help="the learned codec whose images are shown (default: the shipped default model)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing page not written by sarcodec")
    p.set_defaults(func=_cmd_report)


def _cmd_report(args: argparse.Namespace) -> int:
    from sarcodec.bench.html_report import DEFAULT_TARGETS, report_from_results

    out = report_from_results(args.results, inputs=args.inputs, output=args.output,
                              targets=args.bpp or DEFAULT_TARGETS, model=args.model, overwrite=args.overwrite,
                              log=_log)
    print(out)
    return 0


def _cmd_benchmark(args: argparse.Namespace) -> int:
    if args.near_lossless:
        from sarcodec.bench.bounded import DEFAULT_BOUNDS_DB, run_bounded_benchmark

        if args.speckle:
            raise BadInputError("--speckle is for the lossy benchmark (near-lossless files keep the speckle)")

        run_bounded_benchmark(args.inputs, args.output, bounds_db=args.bounds or DEFAULT_BOUNDS_DB, log=_log)
        print((Path(args.output) / "near_lossless.md").read_text())
        return 0
    from sarcodec.bench.sweep import run_benchmark

    if args.html:
        from sarcodec.bench.viewer import check_page_output

        check_page_output(Path(args.output) / "report.html")
    run_benchmark(args.inputs, args.output, codecs=args.codecs, models=args.models, checkpoints=args.checkpoint,
                  units=args.units, bd_range=tuple(args.bd_range), log=_log, speckle=args.speckle)
    print((Path(args.output) / "report.md").read_text())
    if args.html:
        from sarcodec.bench.html_report import report_from_results

        print(report_from_results(args.output, log=_log))
    return 0


# ------------------------------------------------------------------------------ batch
def _add_batch(sub: Any) -> None:
    p = sub.add_parser(
        "batch",
        help="compress (or decompress) many scenes on Dask distributed: resumable, with a manifest",
        description="Compress every raster of INPUTS on a local Dask cluster or an existing scheduler, one task per "
        "scene and per band of multi-band rasters (OUTDIR/NAME.sarc, NAME_bK.sarc); with --decompress, decode every "
        ".sarc to OUTDIR/NAME.tif. Outputs that exist and verify are skipped, damaged ones redone; OUTDIR/manifest.csv "
        "lists every scene (status done/skipped/failed, bytes, bpp, seconds, error). Exit code 6 when a scene failed.",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUTS",
                   help="rasters (.sarc files with --decompress) or directories of them (searched recursively)")
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="output directory (created if missing)")
    p.add_argument("--decompress", action="store_true", help="decode .sarc files to GeoTIFFs instead")
    p.add_argument("--workers", type=_positive_int, default=2,
                   help="worker processes of the local cluster, one core each (default 2; unused with --scheduler)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="use the Dask scheduler at ADDRESS (e.g. tcp://host:8786) instead of a local cluster; its "
                   "workers must import sarcodec and see the same paths")
    p.add_argument("--connect-timeout", type=_positive_float, default=10.0, metavar="S",
                   help="seconds to wait for --scheduler (default 10)")
    p.add_argument("--progress", action="store_true",
                   help="show Dask's progress bar on stderr (default: only when stderr is a terminal)")
    rate = p.add_mutually_exclusive_group()
    rate.add_argument("-q", "--quality", type=float, default=None, help="as for compress (default 4)")
    rate.add_argument("--bpp", type=_positive_float, default=None, help="as for compress: target bits per pixel")
    rate.add_argument("--max-error", type=_non_negative_float, default=None, metavar="E",
                      help="as for compress: near-lossless within E dB (E in input units with --max-error-units input)")
    rate.add_argument("--lossless", action="store_true", help="as for compress: the exact values back")
    p.add_argument("--max-error-units", choices=("db", "input"), default=None, help="units of --max-error (default db)")
    p.add_argument("--model", default=None,
                   help="shipped codec name (default hyperprior) or a .safetensors codec file (with --decompress: "
                   "for files written with a model that is not shipped)")
    p.add_argument("--units", choices=UNITS, default=None, help="units of the input values (default: inferred per scene)")
    p.add_argument("--band", type=_positive_int, default=None,
                   help="compress only this 1-based band (default: every band of a multi-band raster)")
    p.add_argument("--runtime", choices=("auto", "torch", "onnx"), default=None,
                   help="as for compress: auto (default), torch or onnx")
    p.add_argument("--cog", action="store_true", help="with --decompress: write Cloud-Optimized GeoTIFFs")
    speckle = p.add_mutually_exclusive_group()
    speckle.add_argument("--speckle", action="store_true", help="as for compress: store the speckle to synthesize")
    speckle.add_argument("--no-speckle", action="store_true",
                         help="with --decompress: leave out the speckle of files written with --speckle")
    p.set_defaults(func=_cmd_batch)


def _cmd_batch(args: argparse.Namespace) -> int:
    from sarcodec.deploy.batch import MANIFEST_NAME, raise_for_failures, run_batch

    # unset options are None: run_batch passes on those given and rejects the ones of the other mode
    if args.speckle and args.decompress:
        raise BadInputError("--speckle is an option of compress (a file written with it decodes with its speckle)")
    if args.no_speckle and not args.decompress:
        raise BadInputError("--no-speckle is an option of --decompress")
    options = {"quality": args.quality, "bpp": args.bpp, "max_error": args.max_error,
               "max_error_units": args.max_error_units, "lossless": args.lossless or None, "model": args.model,
               "units": args.units, "band": args.band, "runtime": args.runtime, "cog": args.cog or None,
               "speckle": True if args.speckle else False if args.no_speckle else None}
    rows = run_batch(args.inputs, args.output, decompress=args.decompress, workers=args.workers,
                     scheduler=args.scheduler, options=options, progress=args.progress or sys.stderr.isatty(),
                     connect_timeout=args.connect_timeout, log=print)
    raise_for_failures(rows, Path(args.output) / MANIFEST_NAME)
    return 0


_COMMANDS: tuple[Callable[[Any], None], ...] = (
    _add_compress, _add_decompress, _add_info, _add_prepare, _add_train, _add_evaluate, _add_benchmark, _add_report,
    _add_export, _add_serve, _add_batch,
)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="sarcodec", description="Learned compression and research workbench for SAR imagery.")
    parser.add_argument("--version", action="version", version=f"sarcodec {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for add in _COMMANDS:
        add(sub)
    return parser


class Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP arrived: raised in the main thread like Ctrl-C's KeyboardInterrupt (a subclass, so that
    whatever cleans up after Ctrl-C cleans up after these too), remembering the signal for the exit code."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _stop_signals() -> list[int]:
    return [s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)) if s is not None]


def _raise_stopped(signum: int, frame: Any) -> None:
    # once: a second SIGTERM must not cut short the cleanup the first one started (SIGKILL still ends it)
    for other in _stop_signals():
        if signal.getsignal(other) is _raise_stopped:
            signal.signal(other, signal.SIG_IGN)
    raise Stopped(signum)


def _default_in_child() -> None:
    """In a forked child (DataLoader workers, process pools): the signals' default again, so that terminating a
    child ends it instead of raising in it."""
    for signum in _REPLACED:
        if signal.getsignal(signum) in (_raise_stopped, signal.SIG_IGN):
            signal.signal(signum, signal.SIG_DFL)


if hasattr(os, "register_at_fork"):  # a no-op in children of processes that never ran a command
    os.register_at_fork(after_in_child=_default_in_child)

#: the signals :func:`_stop_on_signals` took over in this process, all from their default, which :func:`main`
#: restores (SIG_IGN on one of these is :func:`_raise_stopped`'s, not a caller's)
_REPLACED: set[int] = set()


def _stop_on_signals() -> set[int]:
    """Make SIGTERM and SIGHUP raise :class:`Stopped` while a command runs; their default would end the process
    at once and leave the writers' partial files (``.NAME.PID.partial``) behind. A signal whose handling is not the
    default (SIGHUP ignored under ``nohup``, a handler of an embedding program) keeps it. Returns the signals taken
    over; nothing outside the main thread (``signal`` allows it only there)."""
    if threading.current_thread() is threading.main_thread():
        for signum in _stop_signals():
            if signal.getsignal(signum) is signal.SIG_DFL:
                signal.signal(signum, _raise_stopped)
                _REPLACED.add(signum)
    return set(_REPLACED)


def _restore_signals() -> None:
    """The default handling of the signals :func:`_stop_on_signals` took over."""
    for signum in _REPLACED:
        signal.signal(signum, signal.SIG_DFL)
    _REPLACED.clear()


def _output_file(given: str | None) -> Path | None:
    """``-o``'s file path (None when not given). One that names a folder (ending in a slash, ``.`` or ``..``, which
    Path would quietly turn into a file name) is bad input rather than a file named like the folder; an empty one
    never gets here (:func:`_run` refuses it for every command)."""
    if given is None:
        return None
    if given.replace(os.sep, "/").rsplit("/", 1)[-1] in ("", ".", ".."):
        raise BadInputError(f"-o {given!r}: give the output file's path (a file name, not a folder)")
    return Path(given)


#: Exit status of a command whose reader went away, as a shell reports one ended by SIGPIPE (13 where the platform
#: has no such signal).
_SIGPIPE_EXIT = 128 + int(getattr(signal, "SIGPIPE", 13))


def _stdout_gone() -> None:
    """Send later writes to stdout (the interpreter's own flush at exit included) nowhere: its reader went away."""
    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _stop_on_signals()
    code = _run(args)
    try:
        sys.stdout.flush()  # a reader that went away (`| head -1`) is noticed here, not at the interpreter's exit
    except BrokenPipeError:
        _stdout_gone()
        return code or _SIGPIPE_EXIT  # a failure's own status says more than the closed pipe
    return code


def _run(args: argparse.Namespace) -> int:
    """The command, with every failure turned into one line on stderr and an exit status."""
    try:
        for name in ("output", "output_dir"):  # Path("") is the working folder: an empty -o is a mistake
            if isinstance(getattr(args, name, None), str) and not getattr(args, name).strip():
                raise BadInputError(f"--{name.replace('_', '-')} is empty: give a path")
        result: int = args.func(args)
        return result
    except BrokenPipeError:  # the reader of stdout went away (or a pipe of the work broke: SARCODEC_DEBUG shows it)
        if os.environ.get("SARCODEC_DEBUG"):
            raise
        _stdout_gone()
        return _SIGPIPE_EXIT
    except SarcodecError as exc:
        print(f"sarcodec {args.command}: error: {_cli_wording(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except Stopped as exc:
        print(f"sarcodec {args.command}: stopped by {signal.Signals(exc.signum).name}", file=sys.stderr)
        return 128 + exc.signum
    except KeyboardInterrupt:
        print(f"sarcodec {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # an unexpected failure still gets one line, unless debugging
        if os.environ.get("SARCODEC_DEBUG"):
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        print(f"sarcodec {args.command}: internal error: {type(exc).__name__}: {first} "
              "(set SARCODEC_DEBUG=1 for a traceback)", file=sys.stderr)
        return 1
    finally:
        _restore_signals()
