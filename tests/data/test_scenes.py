from __future__ import annotations

import pytest

from sarcodec.data.scenes import compile_scene_patterns, scene_id, split_scenes
from sarcodec.errors import BadInputError

DEFAULT = compile_scene_patterns(None)


@pytest.mark.parametrize(
    "path, expected",
    [
        # ../shared/data/sar/train: the Sentinel-1 product inside the chip's file name
        ("train/opensarship__S1A_IW_GRDH_1SDV_20150823T221233_20150823T221258_007396_00A2CA_54D0__Cargo_x10661_y11170__band0.tif",
         "S1A_IW_GRDH_1SDV_20150823T221233"),
        ("train/bigearthnet__S1A_IW_GRDH_1SDV_20170613T165043_33UUP_70_40__VH.tif", "S1A_IW_GRDH_1SDV_20170613T165043"),
        ("train/opensarship__S1A_IW_SLC__1SSV_20150217T204257_x__band1.tif", "S1A_IW_SLC__1SSV_20150217T204257"),
        # ../shared/data/sar/opera: the burst id, whatever the date or polarisation
        ("opera/dist_s1_california/cropped/10SGD/137/2024-12-21/OPERA_L2_RTC-S1_T137-292322-IW2_20241221T015910Z_"
         "20241221T080422Z_S1A_30_v1.0_VH.tif", "T137-292322-IW2"),
        ("opera/distmetrics_papua/OPERA_L2_RTC-S1_T009-019294-IW2_20240123T084748Z_20240123T162136Z_S1A_30_v1.0_VH_cropped.tif",
         "T009-019294-IW2"),
        # product name only in the directory (SSL4EO GeoTIFFs)
        ("geotiff/ssl4eo_s12_0000200/S1A_IW_GRDH_1SDV_20200607T010800_20200607T010825_032904_03CFBA_D457/VV.tif",
         "S1A_IW_GRDH_1SDV_20200607T010800"),
        ("elsewhere/my_scene.tif", "elsewhere/my_scene"),
    ],
)
def test_default_scene_ids(path: str, expected: str) -> None:
    assert scene_id(path, DEFAULT) == expected


def test_custom_scene_regex() -> None:
    patterns = compile_scene_patterns([r"^(?P<scene>site\d+)_"])
    assert scene_id("a/site12_2020.tif", patterns) == "site12"
    assert scene_id("a/site12_2021.tif", patterns) == scene_id("b/site12_2022.npy", patterns)
    with pytest.raises(BadInputError, match="needs a group"):
        compile_scene_patterns([r"site\d+"])
    with pytest.raises(BadInputError, match="invalid scene regex"):
        compile_scene_patterns([r"(unclosed"])


def test_split_is_disjoint_complete_seeded_and_order_free() -> None:
    scenes = [f"scene{i:02d}" for i in range(34)]
    split = split_scenes(scenes, (0.8, 0.1, 0.1), seed=7)
    assert [len(split[s]) for s in ("train", "val", "test")] == [28, 3, 3]
    assert set(split["train"]) | set(split["val"]) | set(split["test"]) == set(scenes)
    assert not (set(split["train"]) & set(split["val"])) and not (set(split["val"]) & set(split["test"]))
    assert split == split_scenes(list(reversed(scenes)) + scenes[:5], (0.8, 0.1, 0.1), seed=7)
    assert split != split_scenes(scenes, (0.8, 0.1, 0.1), seed=8)


def test_split_of_few_scenes_keeps_train() -> None:
    assert {k: len(v) for k, v in split_scenes(["a", "b", "c"], seed=0).items()} == {"train": 1, "val": 1, "test": 1}
    assert {k: len(v) for k, v in split_scenes(["a", "b"], seed=0).items()}["train"] >= 1
    with pytest.raises(BadInputError):
        split_scenes(["a"], (1.0, -0.1, 0.1))
