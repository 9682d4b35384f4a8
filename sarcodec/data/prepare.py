"""``sarcodec prepare``: scenes -> a patch dataset split by scene.

Two streaming passes over each raster, never holding a whole raster in memory:

1. a dB histogram per image (clip bounds at the chosen percentiles, per image or over the training split);
2. patch extraction on full-width strips of ``patch_size`` rows, the quality filter, and appends to one
   file per split.

Storage (why): one ``.npy`` file per split and per array, memory-mapped by the Dataset. ``.npy`` is
self-describing, needs no extra dependency, and ``np.load(mmap_mode='r')`` gives every DataLoader worker
zero-copy random access served from the page cache; patches are fixed-size, so HDF5/zarr chunking would add
a decompression step and a dependency for nothing. Patches are stored as ``uint16 = round(x_norm * 65535)``
(a uniform 1.5e-5 step, far below any codec's error, half the size of float32) with a ``uint8`` validity mask.

Output is built in a hidden sibling directory and renamed into place at the end, so a failure never leaves a
partial dataset behind.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.typing as npt
from tqdm import tqdm

from sarcodec.version import __version__
from sarcodec.data.scenes import SPLITS, check_ratios, compile_scene_patterns, scene_id, split_scenes
from sarcodec.errors import BadInputError, OutputError
from sarcodec.io.folders import nearest_existing
from sarcodec.io.raster import RasterInfo, find_rasters, open_raster
from sarcodec.preprocess import (
    DEFAULT_CLIP_PERCENTILES,
    DbHistogram,
    PreprocessingParams,
    check_percentiles,
    check_units,
    db_histogram,
    forward,
    infer_units,
    make_params,
)

MANIFEST = "manifest.json"
DATASET_FORMAT = "sarcodec-patches"
DATASET_VERSION = 1
UINT16_SCALE = 65535.0
_HIST_BLOCK_ROWS = 1024

Log = Callable[[str], None]


@dataclass(frozen=True)
class PrepareConfig:
    """Options of ``sarcodec prepare`` (see its ``--help``)."""

    patch_size: int = 64
    stride: int | None = None  # None -> patch_size (no overlap)
    units: str | None = None  # None -> inferred per file
    band: int | None = None
    clip_percentiles: tuple[float, float] = DEFAULT_CLIP_PERCENTILES
    clip_scope: str = "image"  # "image": per-image bounds; "train": bounds over all training images
    split_ratios: tuple[float, float, float] = (0.8, 0.1, 0.1)
    seed: int = 0
    fraction: float = 1.0
    max_invalid_fraction: float = 0.1
    min_std: float = 0.005
    scene_regex: tuple[str, ...] = field(default_factory=tuple)

    @property
    def effective_stride(self) -> int:
        return self.stride if self.stride is not None else self.patch_size

    def validate(self) -> None:
        if self.patch_size < 8:
            raise BadInputError(f"patch size must be >= 8, got {self.patch_size}")
        if self.effective_stride < 1:
            raise BadInputError(f"stride must be >= 1, got {self.stride}")
        if self.units is not None:
            check_units(self.units)
        check_percentiles(self.clip_percentiles)
        if self.clip_scope not in ("image", "train"):
            raise BadInputError(f"clip scope must be 'image' or 'train', got {self.clip_scope!r}")
        check_ratios(self.split_ratios)
        if self.seed < 0:
            raise BadInputError(f"seed must be >= 0, got {self.seed}")
        if not 0.0 < self.fraction <= 1.0:
            raise BadInputError(f"fraction must be in (0, 1], got {self.fraction}")
        if not 0.0 <= self.max_invalid_fraction <= 1.0:
            raise BadInputError(f"max invalid fraction must be in [0, 1], got {self.max_invalid_fraction}")
        if not (math.isfinite(self.min_std) and self.min_std >= 0):  # nan turned the filter off
            raise BadInputError(f"min std must be a number >= 0, got {self.min_std}")


@dataclass
class _Image:
    info: RasterInfo
    units: str
    units_rule: str
    scene: str
    split: str = ""
    db_lo: float = math.nan
    db_hi: float = math.nan
    params: PreprocessingParams | None = None
    patches: int = 0


def grid_positions(length: int, patch: int, stride: int) -> list[int]:
    """Top/left offsets of patches along one axis: a regular grid plus one flush with the far edge."""
    if length < patch:
        return []
    pos = list(range(0, length - patch + 1, stride))
    if pos[-1] != length - patch:
        pos.append(length - patch)
    return pos


class _SplitWriter:
    """Appends patches of one split to raw files, then wraps them as ``.npy`` (streaming, no big buffers)."""

    def __init__(self, directory: Path, split: str, patch: int) -> None:
        self.directory, self.split, self.patch = directory, split, patch
        self.count = 0
        self._raw: dict[str, IO[bytes]] = {
            name: open(directory / f"{split}_{name}.raw", "wb") for name in ("patches", "valid")
        }
        self._index: list[npt.NDArray[np.int32]] = []

    def append(self, x_norm: npt.NDArray[np.float32], valid: npt.NDArray[np.bool_], index: npt.NDArray[np.int32]) -> None:
        self._raw["patches"].write(np.rint(x_norm * UINT16_SCALE).astype("<u2").tobytes())
        self._raw["valid"].write(valid.astype(np.uint8).tobytes())
        self._index.append(index)
        self.count += len(index)

    def finalize(self) -> dict[str, str]:
        files = {}
        shape = (self.count, self.patch, self.patch)
        for name, dtype in (("patches", "<u2"), ("valid", "|u1")):
            self._raw[name].close()
            raw_path = self.directory / f"{self.split}_{name}.raw"
            npy_name = f"{self.split}_{name}.npy"
            with open(self.directory / npy_name, "wb") as out, open(raw_path, "rb") as raw:
                np.lib.format.write_array_header_1_0(out, {"descr": dtype, "fortran_order": False, "shape": shape})
                shutil.copyfileobj(raw, out, length=16 << 20)
            raw_path.unlink()
            files[name] = npy_name
        index = np.concatenate(self._index) if self._index else np.zeros((0, 3), dtype=np.int32)
        np.save(self.directory / f"{self.split}_index.npy", index)
        files["index"] = f"{self.split}_index.npy"
        return files

    def close(self) -> None:
        for f in self._raw.values():
            f.close()


def _check_output(output: Path, overwrite: bool, inputs: Sequence[Path] = ()) -> None:
    """Refuse to clobber anything that is not a sarcodec dataset (a folder with some other ``manifest.json``
    included) or to write a dataset over its own inputs; fail early if it cannot be written."""
    if output.exists():
        if not output.is_dir():
            raise OutputError(f"{output}: exists and is not a directory")
        if any(output.iterdir()):
            if not overwrite:
                raise OutputError(f"{output}: exists and is not empty (pass --overwrite to replace a sarcodec dataset)")
            try:
                load_manifest(output)
            except BadInputError:
                raise OutputError(f"{output}: not a sarcodec dataset (no sarcodec {MANIFEST}); refusing to overwrite "
                                  "it") from None
    for path in inputs:
        if output in path.resolve().parents:
            raise OutputError(f"{output}: holds the input {path}; write the dataset somewhere else")
    existing = nearest_existing(output.resolve().parent)
    if not existing.is_dir():
        raise OutputError(f"{output}: cannot create it ({existing} is not a directory)")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(f"{output}: cannot create it ({existing} is not writable)")


def _inspect(paths: list[Path], config: PrepareConfig) -> list[_Image]:
    """Open every raster (headers and a small sample only) so bad input fails before any work."""
    patterns = compile_scene_patterns(config.scene_regex)
    images = []
    for path in paths:
        with open_raster(path, config.band) as reader:
            if config.units is not None:
                units, rule = config.units, "given by --units"
            else:
                units, rule = infer_units(reader.info.dtype, reader.sample())
            images.append(_Image(reader.info, units, rule, scene_id(path, patterns)))
    return images


def _histograms(images: list[_Image], config: PrepareConfig) -> DbHistogram:
    """Pass 1: per-image clip bounds; returns the histogram of the training split's images."""
    train_hist = DbHistogram()
    for im in tqdm(images, desc="pass 1/2: dB histograms", unit="image", disable=None):
        with open_raster(im.info.path, im.info.band) as reader:
            blocks = (block for _, block in reader.iter_row_blocks(_HIST_BLOCK_ROWS))
            hist = db_histogram(blocks, im.units, im.info.nodata)
        if hist.total == 0:
            raise BadInputError(f"{im.info.path}: no valid pixels (all NaN, Inf, nodata or <= 0)")
        im.db_lo, im.db_hi = hist.clip_bounds(config.clip_percentiles)
        if im.split == "train":
            train_hist.merge(hist)
    return train_hist


def _extract(im: _Image, image_index: int, writer: _SplitWriter, config: PrepareConfig, rejected: Counter[str]) -> None:
    """Pass 2 for one image: strips of ``patch_size`` rows -> filtered patches -> the split's writer."""
    assert im.params is not None
    p, stride = config.patch_size, config.effective_stride
    rows = grid_positions(im.info.height, p, stride)
    cols = np.array(grid_positions(im.info.width, p, stride), dtype=np.int64)
    if not rows or cols.size == 0:
        rejected["too_small_images"] += 1
        return
    rng = np.random.default_rng([config.seed, image_index])
    with open_raster(im.info.path, im.info.band) as reader:
        for r in rows:
            x_strip, valid_strip = forward(reader.read((r, 0, p, im.info.width)), im.params)
            # (n_cols, p, p) views of the strip at each column offset
            x = np.lib.stride_tricks.sliding_window_view(x_strip, (p, p))[0, cols]
            valid = np.lib.stride_tricks.sliding_window_view(valid_strip, (p, p))[0, cols]
            invalid_fraction = 1.0 - valid.mean(axis=(1, 2))
            bad_invalid = invalid_fraction > config.max_invalid_fraction
            bad_constant = ~bad_invalid & (x.std(axis=(1, 2)) < config.min_std)
            keep = ~bad_invalid & ~bad_constant
            rejected["invalid"] += int(bad_invalid.sum())
            rejected["constant"] += int(bad_constant.sum())
            if config.fraction < 1.0:
                keep &= rng.random(cols.size) < config.fraction
            if not keep.any():
                continue
            kept_cols = cols[keep]
            index = np.stack(
                [np.full(kept_cols.size, image_index), np.full(kept_cols.size, r), kept_cols], axis=1
            ).astype(np.int32)
            writer.append(x[keep], valid[keep], index)
            im.patches += int(keep.sum())


def prepare_dataset(
    inputs: Sequence[str | Path],
    output: str | Path,
    config: PrepareConfig = PrepareConfig(),
    *,
    overwrite: bool = False,
    log: Log = lambda msg: None,
) -> dict[str, Any]:
    """Build a patch dataset from rasters and/or directories of rasters; returns the manifest dict."""
    config.validate()
    output = Path(output).resolve()  # "-o ." must name the directory, not "" inside itself
    paths = find_rasters(list(inputs))
    images = _inspect(paths, config)
    _check_output(output, overwrite, paths)

    split = split_scenes((im.scene for im in images), config.split_ratios, config.seed)
    split_of = {s: name for name, scenes in split.items() for s in scenes}
    for im in images:
        im.split = split_of[im.scene]

    with _staging(output) as tmp:
        train_hist = _histograms(images, config)
        # printed once every input is known to be usable, so a bad input gets exactly one line
        for rule, n in Counter(f"{im.units} ({im.units_rule})" for im in images).items():
            log(f"units: {rule}: {n} file(s)")
        shared = _assign_params(images, train_hist, config)
        writers = {name: _SplitWriter(tmp, name, config.patch_size) for name in SPLITS}
        try:
            rejected: Counter[str] = Counter()
            with tqdm(total=sum(im.info.height * im.info.width for im in images), desc="pass 2/2: patches",
                      unit="px", unit_scale=True, disable=None) as bar:
                for i, im in enumerate(images):
                    _extract(im, i, writers[im.split], config, rejected)
                    bar.update(im.info.height * im.info.width)
            files = {name: w.finalize() for name, w in writers.items()}
        finally:
            for w in writers.values():
                w.close()
        if not any(im.patches for im in images):  # a dataset of nothing: train then blamed the split
            raise BadInputError(f"no patches: every image is smaller than {config.patch_size} px or every patch was "
                                "rejected (mostly invalid or near-constant); use a smaller --patch-size")
        manifest = _manifest(images, split, files, config, shared, rejected)
        with open(tmp / MANIFEST, "w") as f:
            json.dump(manifest, f, indent=1)
    return manifest


def _assign_params(images: list[_Image], train_hist: DbHistogram, config: PrepareConfig) -> dict[str, Any]:
    """Give every image its PreprocessingParams; returns the dataset-wide part of them."""
    shared: dict[str, Any] = {
        "clip_percentiles": list(config.clip_percentiles),
        "clip_scope": config.clip_scope,
        "noise_floor": "db_lo (x_norm = 0), invalid pixels flagged in the validity mask",
        "storage": "uint16 = round(x_norm * 65535)",
    }
    if config.clip_scope == "train":
        if train_hist.total == 0:
            raise BadInputError("clip scope 'train' needs at least one training image with valid pixels")
        shared["db_lo"], shared["db_hi"] = train_hist.clip_bounds(config.clip_percentiles)
    for im in images:
        lo, hi = (shared["db_lo"], shared["db_hi"]) if config.clip_scope == "train" else (im.db_lo, im.db_hi)
        im.params = make_params(
            im.units, im.info.dtype, lo, hi,
            clip_percentiles=config.clip_percentiles, clip_scope=config.clip_scope, nodata=im.info.nodata,
        )
    return shared


@contextmanager
def _staging(output: Path) -> Iterator[Path]:
    """A hidden sibling directory that becomes ``output`` on success and vanishes (with any parents it
    created) on failure, so no partial dataset is ever left behind."""
    created = _missing_parents(output)
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{output.name}.partial-", dir=output.parent))
    except OSError as exc:
        _remove_empty(created)
        raise OutputError(f"{output}: cannot create it ({exc.strerror or exc})") from None
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)  # mkdtemp makes it 0700; the dataset should get the usual permissions
    try:
        yield tmp
        if output.exists():
            # empty, or a sarcodec dataset the caller may overwrite (_check_output): keep the directory itself
            # (it may be the shell's working directory) and swap the dataset's files; files the dataset does not
            # list (a user's notes beside it) stay
            for name in _dataset_files(output):
                (output / name).unlink(missing_ok=True)
            for new in tmp.iterdir():
                os.replace(new, output / new.name)
            tmp.rmdir()
        else:
            os.replace(tmp, output)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        _remove_empty(created)
        raise


def _dataset_files(root: Path) -> list[str]:
    """The file names the dataset at ``root`` consists of (those its manifest lists, and the manifest); none when
    ``root`` holds no dataset."""
    try:
        manifest = load_manifest(root)
    except BadInputError:
        return []
    names = [Path(str(name)).name for split in manifest.get("files", {}).values() if isinstance(split, dict)
             for name in split.values()]
    return [*names, MANIFEST]


def _remove_empty(directories: list[Path]) -> None:
    for d in directories:
        try:
            d.rmdir()
        except OSError:
            break


def _missing_parents(output: Path) -> list[Path]:
    """Parent directories that do not exist yet, deepest first (removed again on failure)."""
    missing = []
    p = output.resolve().parent
    while not p.exists():
        missing.append(p)
        p = p.parent
    return missing


def _manifest(
    images: list[_Image],
    split: dict[str, list[str]],
    files: dict[str, dict[str, str]],
    config: PrepareConfig,
    shared: dict[str, Any],
    rejected: Counter[str],
) -> dict[str, Any]:
    counts: dict[str, Any] = {
        name: {
            "scenes": len(split[name]),
            "images": sum(im.split == name for im in images),
            "patches": sum(im.patches for im in images if im.split == name),
        }
        for name in SPLITS
    }
    counts["rejected"] = {k: int(rejected.get(k, 0)) for k in ("invalid", "constant", "too_small_images")}
    return {
        "format": DATASET_FORMAT,
        "version": DATASET_VERSION,
        "created_by": f"sarcodec {__version__}",
        "patch_size": config.patch_size,
        "stride": config.effective_stride,
        "splits": split,
        "counts": counts,
        "preprocessing_params": shared,
        "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(config).items()},
        "files": files,
        "images": [
            {
                "path": im.info.path,
                "scene": im.scene,
                "split": im.split,
                "units_rule": im.units_rule,
                "raster": im.info.to_dict(),
                "preprocessing_params": im.params.to_dict() if im.params else None,
                "patches": im.patches,
            }
            for im in images
        ],
    }


def load_manifest(root: str | Path) -> dict[str, Any]:
    """Read and sanity-check ``DATASET/manifest.json`` (raises BadInputError)."""
    path = Path(root) / MANIFEST
    if not path.is_file():
        raise BadInputError(f"{root}: not a sarcodec dataset (no {MANIFEST}); create one with 'sarcodec prepare'")
    try:
        with open(path) as f:
            manifest: dict[str, Any] = json.load(f)
    except (OSError, json.JSONDecodeError) as exc:
        raise BadInputError(f"{path}: unreadable manifest ({exc})") from None
    if manifest.get("format") != DATASET_FORMAT:
        raise BadInputError(f"{path}: not a sarcodec patch dataset manifest")
    return manifest
