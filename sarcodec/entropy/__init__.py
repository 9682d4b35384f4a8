"""Entropy coding, the low layer the codec architectures import (as CompressAI's ``entropy_models``):

- ``tables.py``: integer probability tables and grouped rANS coding with constriction (no PyTorch), shared by the
  learned entropy models, the latent coder of the seed models and the near-lossless coder;
- ``keep.py``: which latent positions a tile codes, from its validity mask (no PyTorch);
- ``models.py``: the learned entropy models (factorized density, Gaussian conditional) for training and coding.

Import the modules themselves: this package imports nothing, so ``tables`` stays usable without PyTorch.
"""
