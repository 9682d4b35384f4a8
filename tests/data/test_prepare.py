from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from sarcodec.data.dataset import PatchDataset, dihedral
from sarcodec.data.prepare import PrepareConfig, grid_positions, load_manifest, prepare_dataset
from sarcodec.errors import BadInputError, OutputError
from sarcodec.io.raster import open_raster
from sarcodec.preprocess import forward


def test_grid_positions_cover_the_far_edge() -> None:
    assert grid_positions(100, 32, 32) == [0, 32, 64, 68]
    assert grid_positions(64, 32, 16) == [0, 16, 32]
    assert grid_positions(20, 32, 32) == []


def test_prepare_splits_by_scene_and_writes_manifest(scene_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "ds"
    manifest = prepare_dataset([scene_dir], out, PrepareConfig(patch_size=32, seed=1, split_ratios=(0.6, 0.2, 0.2)))
    assert manifest == load_manifest(out)
    splits = manifest["splits"]
    assert sorted(splits["train"] + splits["val"] + splits["test"]) == sorted(
        ["T137-292322-IW2", "T137-292318-IW1", "T009-019294-IW2", "S1A_IW_GRDH_1SDV_20150823T221233",
         "S1B_IW_GRDH_1SDV_20170612T165809", "S1A_IW_SLC__1SSV_20150217T204257"])
    assert all(len(splits[s]) >= 1 for s in splits)
    for im in manifest["images"]:  # every image's patches are in its scene's split
        assert im["scene"] in splits[im["split"]]
    for split in ("train", "val", "test"):
        ds = PatchDataset(out, split)
        assert len(ds) == manifest["counts"][split]["patches"] > 0
        assert {ds[i]["scene"] for i in range(len(ds))} <= set(splits[split])
    json.dumps(manifest["preprocessing_params"])
    assert manifest["patch_size"] == 32 and manifest["counts"]["rejected"]["invalid"] == 0


def test_patches_equal_the_preprocessed_source(scene_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "ds"
    manifest = prepare_dataset([scene_dir], out, PrepareConfig(patch_size=32, stride=24))
    ds = PatchDataset(out, "train")
    for i in (0, len(ds) // 2, len(ds) - 1):
        sample = ds[i]
        params = ds.preprocessing_params(sample["image_index"])
        with open_raster(manifest["images"][sample["image_index"]]["path"]) as r:
            raw = r.read((sample["row"], sample["col"], 32, 32))
        x, valid = forward(raw, params)
        np.testing.assert_allclose(sample["image"][0].numpy(), x, atol=1.0 / 65535)
        np.testing.assert_array_equal(sample["valid"][0].numpy(), valid)
        assert sample["image"].shape == (1, 32, 32) and sample["image"].dtype == torch.float32


def test_quality_filter_fraction_and_train_scope(scene_dir: Path, tmp_path: Path) -> None:
    full = prepare_dataset([scene_dir], tmp_path / "a", PrepareConfig(patch_size=16))
    strict = prepare_dataset([scene_dir], tmp_path / "b", PrepareConfig(patch_size=16, max_invalid_fraction=0.0))
    assert strict["counts"]["rejected"]["invalid"] > 0  # the NaN corner of every OPERA date
    sub = prepare_dataset([scene_dir], tmp_path / "c", PrepareConfig(patch_size=16, fraction=0.2, seed=0))
    n_full = sum(full["counts"][s]["patches"] for s in ("train", "val", "test"))
    n_sub = sum(sub["counts"][s]["patches"] for s in ("train", "val", "test"))
    assert 0.1 * n_full < n_sub < 0.3 * n_full
    glob = prepare_dataset([scene_dir], tmp_path / "d", PrepareConfig(patch_size=16, clip_scope="train"))
    bounds = {(im["preprocessing_params"]["db_lo"], im["preprocessing_params"]["db_hi"]) for im in glob["images"]}
    assert len(bounds) == 1 and glob["preprocessing_params"]["db_lo"] == bounds.pop()[0]


def test_constant_patches_are_rejected(tmp_path: Path) -> None:
    arr = np.full((64, 64), 0.5, dtype=np.float32)
    arr[:, 32:] = np.random.default_rng(0).gamma(1.0, 1.0, size=(64, 32))
    np.save(tmp_path / "half.npy", arr)
    m = prepare_dataset([tmp_path / "half.npy"], tmp_path / "ds", PrepareConfig(patch_size=32, split_ratios=(1, 0, 0)))
    assert m["counts"]["rejected"]["constant"] == 2 and m["counts"]["train"]["patches"] == 2


def test_refuses_to_overwrite_and_leaves_nothing_on_failure(scene_dir: Path, tmp_path: Path) -> None:
    user_dir = tmp_path / "mine"
    user_dir.mkdir()
    (user_dir / "precious.txt").write_text("keep me")
    with pytest.raises(OutputError, match="not empty"):
        prepare_dataset([scene_dir], user_dir)
    with pytest.raises(OutputError, match="not a sarcodec dataset"):
        prepare_dataset([scene_dir], user_dir, overwrite=True)
    assert (user_dir / "precious.txt").read_text() == "keep me"
    nan = np.full((40, 40), np.nan, dtype=np.float32)
    np.save(tmp_path / "nan.npy", nan)
    with pytest.raises(BadInputError, match="no valid pixels"):
        prepare_dataset([scene_dir, tmp_path / "nan.npy"], tmp_path / "new" / "ds")
    assert not (tmp_path / "new").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine", "nan.npy", "scenes"]


def test_overwrite_replaces_only_a_sarcodec_datasets_own_files(scene_dir: Path, tmp_path: Path) -> None:
    """--overwrite took any folder with a manifest.json for a dataset and emptied it, inputs included."""
    web = tmp_path / "web"
    web.mkdir()
    (web / "manifest.json").write_text('{"name": "my web app"}')
    (web / "notes.txt").write_text("keep me")
    source = next(scene_dir.rglob("*.tif"))
    shutil.copy(source, web / "scene.tif")
    with pytest.raises(OutputError, match="not a sarcodec dataset"):
        prepare_dataset([web / "scene.tif"], web, PrepareConfig(patch_size=32), overwrite=True)
    ds = tmp_path / "ds"
    prepare_dataset([scene_dir], ds, PrepareConfig(patch_size=32))
    shutil.copy(source, ds / "scene.tif")
    with pytest.raises(OutputError, match="holds the input"):
        prepare_dataset([ds / "scene.tif"], ds, PrepareConfig(patch_size=32), overwrite=True)
    (ds / "scene.tif").unlink()
    (ds / "notes.txt").write_text("mine")  # beside a dataset: not one of its files, so it stays
    prepare_dataset([scene_dir], ds, PrepareConfig(patch_size=16), overwrite=True)
    assert (ds / "notes.txt").read_text() == "mine" and load_manifest(ds)["patch_size"] == 16
    assert sorted(p.name for p in web.iterdir()) == ["manifest.json", "notes.txt", "scene.tif"]


def test_dataset_augmentation_and_multiworker_loader(scene_dir: Path, tmp_path: Path) -> None:
    prepare_dataset([scene_dir], tmp_path / "ds", PrepareConfig(patch_size=16))
    x = torch.arange(16.0).reshape(1, 4, 4)
    outs = {tuple(dihedral(x, k).flatten().tolist()) for k in range(8)}
    assert len(outs) == 8 and torch.equal(dihedral(x, 0), x)
    ds = PatchDataset(tmp_path / "ds", "train", augment=True)
    torch.manual_seed(0)
    sample = ds[0]
    plain = PatchDataset(tmp_path / "ds", "train")[0]
    assert any(torch.equal(sample["image"], dihedral(plain["image"], k)) for k in range(8))
    loader = DataLoader(ds, batch_size=8, num_workers=2, shuffle=True)
    batch = next(iter(loader))
    assert batch["image"].shape == (8, 1, 16, 16) and batch["valid"].dtype == torch.bool
    with pytest.raises(BadInputError, match="unknown split"):
        PatchDataset(tmp_path / "ds", "holdout")


@pytest.mark.shared_data
def test_prepare_real_train_and_opera_no_shared_scenes(shared_sar: Path, tmp_path: Path) -> None:
    m = prepare_dataset([shared_sar / "train", shared_sar / "opera"], tmp_path / "ds", PrepareConfig(patch_size=64))
    s = m["splits"]
    assert not (set(s["train"]) & set(s["val"])) and not (set(s["train"]) & set(s["test"])) and not (set(s["val"]) & set(s["test"]))
    assert len(s["train"]) + len(s["val"]) + len(s["test"]) == 34  # 18 Sentinel-1 products + 16 OPERA bursts
    bursts = {im["scene"] for im in m["images"] if "T137-292322-IW2" in im["path"]}
    assert bursts == {"T137-292322-IW2"}
    assert all(m["counts"][x]["patches"] > 100 for x in ("train", "val", "test"))


def test_output_dot_and_dataset_inside_the_input_folder(scene_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "here"
    out.mkdir()
    monkeypatch.chdir(out)
    m = prepare_dataset([scene_dir], ".", PrepareConfig(patch_size=32))  # "-o ." names the current directory
    assert Path.cwd().samefile(out) and (Path.cwd() / "manifest.json").is_file()  # same directory, not a new one
    assert (out / "manifest.json").is_file() and m["counts"]["train"]["patches"] > 0
    # a dataset written into an input folder is not read back as input on the next run
    first = prepare_dataset([scene_dir], scene_dir / "ds", PrepareConfig(patch_size=32))
    again = prepare_dataset([scene_dir], scene_dir / "ds", PrepareConfig(patch_size=32), overwrite=True)
    assert len(again["images"]) == len(first["images"]) == 12
    with pytest.raises(BadInputError, match="seed must be >= 0"):
        prepare_dataset([scene_dir], tmp_path / "neg", PrepareConfig(seed=-1))


def test_settings_that_gave_empty_or_unfiltered_datasets_are_refused(scene_dir: Path, tmp_path: Path) -> None:
    """A patch size beyond every image wrote a dataset of 0 patches; a scene regex matching '' put every image in
    one scene (empty val and test); NaN split ratios were an internal error; NaN min_std turned the filter off."""
    cases = [(PrepareConfig(patch_size=100_000), "no patches"),
             (PrepareConfig(patch_size=32, scene_regex=["(?P<scene>x*)"]), "empty scene id"),
             (PrepareConfig(patch_size=32, split_ratios=(math.nan, 0.5, 0.5)), "split ratios"),
             (PrepareConfig(patch_size=32, min_std=math.nan), "min std")]
    for config, needle in cases:
        with pytest.raises(BadInputError, match=needle):
            prepare_dataset([scene_dir], tmp_path / "ds", config)
        assert not (tmp_path / "ds").exists()
