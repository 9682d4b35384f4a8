"""Which latent positions a tile codes, from its validity mask (no PyTorch: the codecs of
``sarcodec.models.codecs`` and the PyTorch-free decoder ``sarcodec.codec.lite`` share it).

A latent of y is coded when a valid pixel lies within ``SKIP_MARGIN`` pixels of its footprint; a hyper-latent of z
when a coded y lies within one y position of its footprint. Encoder and decoder derive both from the validity
mask; uncoded latents take their predicted mean (y) or 0 (z).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["SKIP_MARGIN", "keep_masks"]

#: Pixels: latents farther than this from every valid pixel are not coded. The synthesis reaches ~10 px, but its
#: outer taps are weak: with 8 px the valid part of a NaN-bordered image decodes as well as the part alone
#: (PSNR within 0.03 dB) and an 84 % NaN border costs 7-15 % of the valid part's bytes (benchmarks/nodata_cost.py).
SKIP_MARGIN = 8


def _near(mask: npt.NDArray[np.bool_], block: int, margin: int) -> npt.NDArray[np.bool_]:
    """Per ``block`` x ``block`` cell of ``mask`` (shape a multiple of ``block``): True when a True pixel lies in
    the cell or within ``margin`` cells of it."""
    from scipy import ndimage

    h, w = mask.shape
    cells = mask.reshape(h // block, block, w // block, block).any(axis=(1, 3))
    if margin:
        cells = ndimage.binary_dilation(cells, np.ones((2 * margin + 1, 2 * margin + 1), dtype=bool))
    return np.asarray(cells, dtype=bool)


def keep_masks(valid: npt.NDArray[np.bool_] | None, shape: tuple[int, int], factor: int, factor_total: int
               ) -> tuple[npt.NDArray[np.bool_] | None, npt.NDArray[np.bool_] | None]:
    """The y and z positions to code (None: all) for a tile whose (unpadded) validity is ``valid``, padded to
    ``shape``; y is ``factor`` and z ``factor_total`` times coarser than the pixels (z None when there is none)."""
    if valid is None or valid.all():
        return None, None
    padded = np.zeros(shape, dtype=bool)
    padded[: valid.shape[0], : valid.shape[1]] = valid
    keep_y = _near(padded, factor, SKIP_MARGIN // factor)
    if factor_total == factor:
        return keep_y, None
    return keep_y, _near(keep_y, factor_total // factor, 1)
