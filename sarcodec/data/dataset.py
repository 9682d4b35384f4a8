"""PyTorch Dataset over a prepared patch dataset (memory-mapped ``.npy`` files)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch.utils.data import Dataset

from sarcodec.data.prepare import UINT16_SCALE, load_manifest
from sarcodec.data.scenes import SPLITS
from sarcodec.errors import BadInputError
from sarcodec.preprocess import PreprocessingParams


def dihedral(array: torch.Tensor, k: int) -> torch.Tensor:
    """One of the 8 flips/90-degree rotations of the last two axes (k in 0..7); k = 0 is the identity."""
    if k & 4:
        array = torch.flip(array, dims=(-1,))
    return torch.rot90(array, k & 3, dims=(-2, -1))


class PatchDataset(Dataset[dict[str, Any]]):
    """Patches of one split of a dataset made by ``sarcodec prepare``.

    Each sample is a dict:
      - ``image``: float32 tensor (1, P, P), x_norm in [0, 1] (clipped, normalised dB of intensity);
      - ``valid``: bool tensor (1, P, P), False where the source pixel was invalid (noise floor there);
      - ``scene``: str scene id; ``image_index``: int index into ``manifest['images']``;
      - ``row``, ``col``: the patch's top-left pixel in its source image.
    With ``augment=True`` image and mask get the same random flip/90-degree rotation (torch's global RNG,
    so DataLoader worker seeding makes it reproducible).

    Files are opened lazily in each process, so DataLoader workers memory-map them independently.
    """

    def __init__(self, root: str | Path, split: str = "train", augment: bool = False) -> None:
        if split not in SPLITS:
            raise BadInputError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
        self.root = Path(root)
        self.manifest = load_manifest(self.root)
        self.split = split
        self.augment = augment
        self.patch_size = int(self.manifest["patch_size"])
        try:
            self._files = self.manifest["files"][split]
            self.index: npt.NDArray[np.int32] = np.load(self.root / self._files["index"])
        except (KeyError, TypeError, OSError, ValueError) as exc:
            raise BadInputError(f"{self.root}: not a complete sarcodec dataset (the {split} index: "
                                f"{type(exc).__name__}: {exc}); re-run prepare") from None
        self._patches: npt.NDArray[np.uint16] | None = None
        self._valid: npt.NDArray[np.uint8] | None = None
        self._scenes = [im["scene"] for im in self.manifest["images"]]
        self._open()  # every file of the split checked here, before a run writes anything (then reopened lazily)
        self._patches = self._valid = None

    def __len__(self) -> int:
        return int(self.index.shape[0])

    def _open(self) -> None:
        try:
            self._patches = np.load(self.root / self._files["patches"], mmap_mode="r")
            self._valid = np.load(self.root / self._files["valid"], mmap_mode="r")
        except (KeyError, OSError, ValueError) as exc:  # missing, truncated ("mmap length is greater ...")
            raise BadInputError(f"{self.root}: not a complete sarcodec dataset (the {self.split} patches: "
                                f"{type(exc).__name__}: {exc}); re-run prepare") from None
        p = self.patch_size
        if (self._patches.shape != (len(self), p, p) or self._valid.shape != (len(self), p, p)
                or self.index.ndim != 2 or self.index.shape[1] != 3):
            raise BadInputError(f"{self.root}: {self.split} files disagree with the index; re-run prepare")

    def __getitem__(self, i: int) -> dict[str, Any]:
        if self._patches is None:
            self._open()
        assert self._patches is not None and self._valid is not None
        image = torch.from_numpy(self._patches[i].astype(np.float32) / UINT16_SCALE)[None]
        valid = torch.from_numpy(self._valid[i].astype(bool))[None]
        if self.augment:
            k = int(torch.randint(0, 8, ()).item())
            image, valid = dihedral(image, k), dihedral(valid, k)
        image_index, row, col = (int(v) for v in self.index[i])
        return {
            "image": image.contiguous(),
            "valid": valid.contiguous(),
            "scene": self._scenes[image_index],
            "image_index": image_index,
            "row": row,
            "col": col,
        }

    def preprocessing_params(self, image_index: int) -> PreprocessingParams:
        """The exact params that produced the patches of one source image."""
        return PreprocessingParams.from_dict(self.manifest["images"][image_index]["preprocessing_params"])

    def __getstate__(self) -> dict[str, Any]:
        # memory maps are reopened in each worker rather than pickled
        state = dict(self.__dict__)
        state["_patches"] = state["_valid"] = None
        return state
