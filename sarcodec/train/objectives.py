"""What a training run optimizes: the part of the loop that differs between the seed study's autoencoders and
the rate-distortion codecs. The trainer (``trainer.py``) owns everything else: data, schedule, AMP, the NaN guard,
checkpoints and resume, TensorBoard, DDP, early stopping.

- ``autoencoder`` (``sarcodec.models``): ``CombinedLoss`` (MSE + SSIM terms) of ``model(x)`` against ``x``.
- ``rd`` (``sarcodec.models.codecs``): ``lambda(level) * MSE + bits per pixel`` with a random quality level per
  patch (noisy latents for the rate, straight-through rounding for the decoder input), optional extra 1..3-look
  speckle on a share of the patches, and a second optimizer (Adam) for the factorized densities' tail quantiles.
  At the end the best epoch's weights get their integer coding tables and are written as ``<run_name>.safetensors``
  in the run directory, the file ``sarcodec compress --model PATH`` and ``sarcodec.codec.registry`` load.
  ``rd.init`` starts from a codec's weights (a narrower synthesis or hyper-decoder from its most active channels,
  ``sarcodec.train.narrow``); ``rd.train_only`` freezes the rest. A run that trains only parts after the
  quantization (``RDCodec.AFTER_QUANTIZATION``: the synthesis, the inverse gains, a hyperprior's hyper-decoder)
  runs the frozen rest as coding runs it (eval mode: rounded hyper-latents; the latents' rate stays the noisy
  proxy). One that trains only parts that decide no symbol (``RDCodec.DECODER_ONLY``: the synthesis, the inverse
  gains) exports ``rd.init``'s coding tables and integer hyper-decoder as they are (when the frozen weights are
  still ``rd.init``'s), so its files hold ``rd.init``'s entropy-coded symbols.

Every random draw of an objective comes from torch's global generator, which the trainer seeds per epoch, so
rate-distortion runs resume exactly like the autoencoders.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from sarcodec.data.prepare import UINT16_SCALE, load_manifest
from sarcodec.errors import BadInputError, IncompatibleModelError
from sarcodec.losses import CombinedLoss
from sarcodec.metrics import batch_psnr, batch_ssim
from sarcodec.train.checkpoint import file_mode
from sarcodec.train.config import OBJECTIVES, ModelConfig, TrainConfig

if TYPE_CHECKING:
    from sarcodec.models.codecs import RDCodec
    from sarcodec.data.dataset import PatchDataset

__all__ = [
    "OBJECTIVES",
    "AutoencoderObjective",
    "Objective",
    "RDObjective",
    "add_speckle",
    "build_network",
    "evaluate_levels",
    "load_patches",
    "make_objective",
    "network_identity",
    "parameter_counts",
    "patch_db_ranges",
    "rd_loss",
    "rd_terms",
]


def build_network(objective: str, name: str, config: dict[str, Any]) -> nn.Module:
    """The network a run of ``objective`` trains: ``create_model`` (autoencoder) or ``create_codec`` (rd)."""
    import importlib

    from sarcodec.models._registry import build

    importlib.import_module("sarcodec.models.codecs")  # registers the codecs; its parent package the autoencoders

    return build("codec" if objective == "rd" else "autoencoder", name, config)


def network_identity(model: nn.Module) -> tuple[str, dict[str, Any]]:
    """(registry name, constructor arguments) of an autoencoder or a codec: what a checkpoint records."""
    name = getattr(model, "model_name", "") or getattr(model, "codec_name", "")
    return str(name), dict(model.config)  # type: ignore[arg-type]


def parameter_counts(model: nn.Module) -> dict[str, int]:
    """``{"total", "encoder", "decoder", "trainable"}`` of an autoencoder or a codec (both count their own)."""
    counts: dict[str, int] = model.count_parameters()  # type: ignore[operator]
    return dict(counts)


class Objective:
    """The objective-specific steps of the training loop (see the module docstring)."""

    name = ""
    #: Validation metrics, in the order :meth:`val_sums` returns them (``val_loss`` first).
    val_keys: tuple[str, ...] = ("val_loss", "val_mse", "val_psnr", "val_ssim")

    def build(self, config: ModelConfig) -> nn.Module:
        """The freshly initialised network of the run."""
        raise NotImplementedError

    def decayed(self, model: nn.Module) -> set[nn.Parameter]:
        """Main parameters that get weight decay: conv/linear weights (every tensor of 2 or more dimensions)."""
        return {p for p in model.parameters() if p.dim() >= 2}

    def product(self, config: TrainConfig) -> Path | None:
        """The file :meth:`finish` writes besides the checkpoints, or None."""
        return None

    def describe(self, model: nn.Module) -> str:
        """What the run's first log line says about the network besides its name and size."""
        return ""

    def main_parameters(self, model: nn.Module) -> list[nn.Parameter]:
        """Parameters of the main optimizer (AdamW on the LR schedule)."""
        return [p for p in model.parameters() if p.requires_grad]

    def aux_parameters(self, model: nn.Module) -> list[nn.Parameter]:
        """Parameters of the auxiliary optimizer (none for autoencoders)."""
        return []

    def init_weights(self, model: nn.Module, train_set: PatchDataset, log: Any) -> None:
        """Called on a fresh start only (not on resume): load initial weights if the config names some."""

    def prepare(self, model: nn.Module, train_set: PatchDataset, device: torch.device) -> None:
        """Called once before training (fresh or resumed): lookup tables the losses need."""

    def train_loss(self, model: nn.Module, batch: dict[str, Any], device: torch.device) -> torch.Tensor:
        """The scalar loss of one training batch (``model`` may be DDP-wrapped)."""
        raise NotImplementedError

    def aux_loss(self, model: nn.Module) -> torch.Tensor | None:
        """The auxiliary optimizer's loss after each main step, or None."""
        return None

    def val_sums(self, model: nn.Module, batch: dict[str, Any], device: torch.device) -> dict[str, torch.Tensor]:
        """Per-batch sums of the validation metrics (``val_loss`` first; divided by the patch count later)."""
        raise NotImplementedError

    def reconstruct(self, model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        """What the network makes of ``images`` in eval mode (TensorBoard's sample grid)."""
        raise NotImplementedError

    def finish(self, model: nn.Module, config: TrainConfig, val_set: PatchDataset, summary: dict[str, Any],
               log: Any) -> Path | None:
        """After the last epoch, on rank 0, with the best epoch's weights loaded: write the run's product."""
        return None


class AutoencoderObjective(Objective):
    """The seed study's autoencoders on ``CombinedLoss``."""

    name = "autoencoder"

    def __init__(self, loss_fn: CombinedLoss, mask_invalid: bool = True) -> None:
        self.loss_fn = loss_fn
        self.mask_invalid = mask_invalid

    @classmethod
    def from_config(cls, config: TrainConfig) -> AutoencoderObjective:
        """The objective of ``config.loss``."""
        loss = config.loss
        return cls(CombinedLoss(loss.mse_weight, loss.ssim_weight, loss.ms_ssim_weight), loss.mask_invalid)

    def build(self, config: ModelConfig) -> nn.Module:  # noqa: D102
        return build_network(self.name, config.name, config.kwargs())

    def describe(self, model: nn.Module) -> str:  # noqa: D102
        return f", {getattr(model, 'latent_ratio', 0):g} pixels per latent value"

    def _mask(self, batch: dict[str, Any], device: torch.device) -> torch.Tensor | None:
        return batch["valid"].to(device, non_blocking=True) if self.mask_invalid else None

    def train_loss(self, model: nn.Module, batch: dict[str, Any], device: torch.device) -> torch.Tensor:  # noqa: D102
        x = batch["image"].to(device, non_blocking=True)
        loss: torch.Tensor = self.loss_fn(model(x), x, self._mask(batch, device))["loss"]
        return loss

    def val_sums(self, model: nn.Module, batch: dict[str, Any], device: torch.device) -> dict[str, torch.Tensor]:  # noqa: D102
        x = batch["image"].to(device, non_blocking=True)
        x_hat = model(x).float()
        parts = self.loss_fn(x_hat, x, self._mask(batch, device))
        n = x.shape[0]
        return {"val_loss": parts["loss"].double() * n, "val_mse": parts["mse"].double() * n,
                "val_psnr": batch_psnr(x_hat, x).double().sum(), "val_ssim": batch_ssim(x_hat, x).double().sum()}

    def reconstruct(self, model: nn.Module, images: torch.Tensor) -> torch.Tensor:  # noqa: D102
        out: torch.Tensor = model(images)
        return out


class RDObjective(Objective):
    """Rate-distortion training of the codecs: ``lambda(level) * MSE + bpp`` over all quality levels at once."""

    name = "rd"
    val_keys = ("val_loss", "val_mse", "val_psnr", "val_ssim", "val_bpp")

    def __init__(self, config: TrainConfig) -> None:
        self.config = config.rd
        self.spans: torch.Tensor | None = None  # dB span of each source image (speckle augmentation)
        self.lambdas: torch.Tensor | None = None
        #: the top-level modules rd.train_only names (None: all are trained)
        self.train_only = set(self.config.train_only.split(",")) if self.config.train_only else None

    def build(self, config: ModelConfig) -> nn.Module:  # noqa: D102
        return build_network(self.name, config.name, codec_kwargs(config))

    def describe(self, model: nn.Module) -> str:  # noqa: D102
        codec = self._module(model)
        return f", {codec.num_levels} quality levels, lambdas {list(codec.lambdas)}"

    def main_parameters(self, model: nn.Module) -> list[nn.Parameter]:  # noqa: D102
        return [p for n, p in model.named_parameters() if not n.endswith("quantiles") and self._trained(n)]

    def _trained(self, name: str) -> bool:
        """Whether the parameter ``name`` is trained (``rd.train_only``; DDP's ``module.`` prefix ignored)."""
        return self.train_only is None or name.removeprefix("module.").split(".")[0] in self.train_only

    def decayed(self, model: nn.Module) -> set[nn.Parameter]:
        """Only convolution kernels: a codec's gains, GDN matrices and density parameters are not weights to
        shrink (decaying the gains would pull the quality levels together)."""
        return {m.weight for m in model.modules() if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)
                and isinstance(m.weight, nn.Parameter)}

    def product(self, config: TrainConfig) -> Path | None:  # noqa: D102
        return config.resolved_output_dir / f"{config.run_name}.safetensors"

    def aux_parameters(self, model: nn.Module) -> list[nn.Parameter]:  # noqa: D102
        return [p for n, p in model.named_parameters() if n.endswith("quantiles") and self._trained(n)]

    def prepare(self, model: nn.Module, train_set: PatchDataset, device: torch.device) -> None:  # noqa: D102
        codec: RDCodec = model  # type: ignore[assignment]
        if self.train_only is not None:
            modules = {n for n, _ in model.named_children()} | {n for n, _ in model.named_parameters(recurse=False)}
            unknown = self.train_only - modules
            if unknown:
                raise BadInputError(f"rd.train_only names {', '.join(sorted(unknown))}, which the model lacks "
                                    f"(its modules and parameters: {', '.join(sorted(modules))})")
            for name, p in model.named_parameters():  # frozen: no gradients computed for them at all
                p.requires_grad_(self._trained(name))
        self.lambdas = torch.tensor(codec.lambdas, device=device)
        self.spans = torch.from_numpy(image_db_spans(train_set.manifest))

    def init_weights(self, model: nn.Module, train_set: PatchDataset, log: Any) -> None:
        """Start from ``rd.init``'s weights (fine-tuning; a fresh run only): the same architecture and config, or
        one that extends it, or one with a narrower synthesis or hyper-decoder (``model.synthesis_channels``,
        ``model.hyper_synthesis_channels``: started from the source's most active channels on training patches,
        ``sarcodec.train.narrow``)."""
        if not self.config.init:
            return
        from sarcodec.codec.registry import is_coding_state, load_codec

        start_from = load_codec(self.config.init).model
        codec = self._module(model)
        # the same architecture, or one that extends it (e.g. a context model over these transforms): every
        # setting of the source is the run's (but the decoder stacks' widths), and its weights fill the modules they
        # share; a decoder stack of fewer channels starts as the source's most active channels
        narrowed = []
        for stack, key, full in _NARROWABLE:
            if key not in codec.config and key not in start_from.config:
                continue
            width, source_width = (int(c.config.get(key, c.config[full])) for c in (codec, start_from))
            if width > source_width:
                raise IncompatibleModelError(f"rd.init {self.config.init} has a {stack} of {source_width} channels: "
                                             f"a run can narrow it, not widen it to {width}")
            if width < source_width:
                narrowed.append(stack)
        widths = {key for _, key, _ in _NARROWABLE}
        if any(codec.config.get(k) != v for k, v in start_from.config.items() if k not in widths):
            raise IncompatibleModelError(f"rd.init {self.config.init} has config {start_from.config}, "
                                         f"the run wants {codec.config}")
        # coding tables and the integer hyper-decoder are made again when the run finishes
        weights = {k: v for k, v in start_from.state_dict().items()
                   if not is_coding_state(k) and k.split(".")[0] not in narrowed}
        missing, unexpected = codec.load_state_dict(weights, strict=False)
        if unexpected:
            raise IncompatibleModelError(f"rd.init {self.config.init} has weights the run's model lacks: "
                                         f"{', '.join(unexpected[:5])}")
        shared = {k.split(".")[0] for k in weights}
        new = sorted({k.split(".")[0] for k in missing} - shared - set(narrowed))
        note = f" (new modules: {', '.join(new)})" if new else ""
        if narrowed:
            from sarcodec.train import narrow

            images = torch.stack([train_set[int(i)]["image"] for i in torch.randperm(len(train_set))[:_NARROW_PATCHES]])
            images = images.to(next(start_from.parameters()).device)
            for stack in narrowed:
                kept = getattr(narrow, f"narrow_{stack}")(start_from, codec, images)
                note += f" ({stack} narrowed to channels {kept[0].tolist()} and {kept[1].tolist()})"
        log(f"initialised from {self.config.init}{note}")

    def _module(self, model: nn.Module) -> RDCodec:
        """The codec itself (``model`` may be wrapped by DistributedDataParallel)."""
        inner = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
        return inner  # type: ignore[return-value]

    def train_loss(self, model: nn.Module, batch: dict[str, Any], device: torch.device) -> torch.Tensor:  # noqa: D102
        assert self.lambdas is not None and self.spans is not None
        codec = self._module(model)
        if self._after_quantization(codec):  # all that is trained comes after the quantization: the rest runs as
            for name, child in codec.named_children():  # coding runs it (rounded z, not noisy), but the conditional:
                if name not in self.train_only and name != "conditional":  # type: ignore[operator]
                    child.eval()  # its noisy latents give the means their rate gradient (rounded ones give none)
        x = batch["image"]
        n = x.shape[0]
        if self.config.speckle_prob > 0:
            chosen = torch.rand(n) < self.config.speckle_prob
            if bool(chosen.any()):
                x = x.clone()
                spans = self.spans[batch["image_index"][chosen]]
                x[chosen] = add_speckle(x[chosen], spans, torch.default_generator)
        x = x.to(device, non_blocking=True)
        levels = torch.randint(self._module(model).num_levels, (n,)).to(device)
        out = model(x, levels.float() + 1)
        loss, _, _ = rd_loss(out, x, self.lambdas[levels])
        return loss

    def aux_loss(self, model: nn.Module) -> torch.Tensor | None:  # noqa: D102
        return self._module(model).aux_loss()

    def val_sums(self, model: nn.Module, batch: dict[str, Any], device: torch.device) -> dict[str, torch.Tensor]:  # noqa: D102
        assert self.lambdas is not None
        x = batch["image"].to(device, non_blocking=True)
        codec = self._module(model)
        # the levels spread over the patches by a fixed function of (image, row, column): the same levels
        # whatever the batching or process count (balanced on the codec dataset: 99-108 of 810 per level)
        key = batch["image_index"] * 7919 + batch["row"] * 31 + batch["col"]
        levels = (key % codec.num_levels).to(device)
        out = model(x, levels.float() + 1)
        mse, bpp = rd_terms(out, x)
        x_hat = out["x_hat"].float().clamp(0, 1)
        return {"val_loss": (self.lambdas[levels] * mse + bpp).double().sum(), "val_mse": mse.double().sum(),
                "val_psnr": batch_psnr(x_hat, x).double().sum(), "val_ssim": batch_ssim(x_hat, x).double().sum(),
                "val_bpp": bpp.double().sum()}

    def reconstruct(self, model: nn.Module, images: torch.Tensor) -> torch.Tensor:  # noqa: D102
        codec = self._module(model)
        quality = torch.full((len(images),), float(codec.num_levels + 1) / 2, device=images.device)
        out: torch.Tensor = model(images, quality)["x_hat"]
        return out

    def _unchanged_source(self, codec: RDCodec, log: Any) -> Any:
        """``rd.init``'s codec (``LoadedCodec``) if every weight of ``codec`` outside ``DECODER_ONLY`` is still
        its (the coding state excepted), else None (logged: the export then makes its own tables)."""
        from sarcodec.codec.registry import is_coding_state, load_codec

        source = load_codec(str(self.config.init), next(codec.parameters()).device)
        theirs = source.model.state_dict()
        frozen = {k: v for k, v in codec.state_dict().items()
                  if k.split(".")[0] not in codec.DECODER_ONLY and not is_coding_state(k)}
        if source.model.codec_name == codec.codec_name and all(
                k in theirs and theirs[k].shape == v.shape and torch.equal(theirs[k], v) for k, v in frozen.items()):
            return source
        log(f"the weights that decide the symbols are no longer {self.config.init}'s: new coding tables")
        return None

    def _after_quantization(self, codec: RDCodec) -> bool:
        """Whether the run trains only parts of ``rd.init``'s codec that run after its quantization
        (``RDCodec.AFTER_QUANTIZATION``)."""
        return bool(self.config.init) and self.train_only is not None \
            and self.train_only <= set(codec.AFTER_QUANTIZATION)

    def keeps_symbols(self, codec: RDCodec) -> bool:
        """Whether the run trains only parts that decide no symbol (``rd.train_only`` within the codec's
        ``DECODER_ONLY``) of ``rd.init``'s codec: its export then codes the very same symbols as ``rd.init``."""
        return bool(self.config.init) and self.train_only is not None \
            and self.train_only <= set(codec.DECODER_ONLY)

    def finish(self, model: nn.Module, config: TrainConfig, val_set: PatchDataset, summary: dict[str, Any],
               log: Any) -> Path | None:  # noqa: D102
        codec = self._module(model)
        codec.eval()
        patches = torch.stack([val_set[i]["image"] for i in range(min(len(val_set), self.config.val_patches))])
        integer: dict[str, Any] | None = None
        integerize = getattr(codec, "integerize", None)
        source = self._unchanged_source(codec, log) if self.keeps_symbols(codec) else None
        if source is not None:  # rd.init's tables and integer hyper-decoder as they are
            from sarcodec.codec.registry import adopt_coding_state

            adopt_coding_state(codec, source.model.state_dict())
            if "integer_hyper" in source.metadata:
                integer = {**json.loads(source.metadata["integer_hyper"]), "kept from": str(self.config.init)}
            log(f"coding tables and integer hyper-decoder kept from {self.config.init}: the same symbols")
        else:
            codec.update_tables()
            if callable(integerize):  # the exact integer hyper-decoder, activation ranges from validation patches
                try:
                    integer = {**integerize(patch[None] for patch in patches), "calibration": "validation patches"}
                    log(f"integer hyper-decoder: activation limits {integer}")
                except ValueError as exc:  # a network the exact bound cannot hold: the float64 path stays
                    setattr(codec, "integer_hyper", None)  # noqa: B010 (an optional submodule of hyperprior codecs)
                    log(f"no integer hyper-decoder ({exc}); files written with these weights use the float64 path")
        rows = evaluate_levels(codec, patches)
        for row in rows:
            log(f"val quality {row['quality']}: {row['bpp']:.3f} bpp {row['psnr']:.2f} dB")
        metadata = {
            "format": "sarcodec-codec",
            "version": "1",
            "codec": codec.codec_name,
            "config": json.dumps(codec.config),
            "training": json.dumps({**summary, "config": config.to_dict(), "data": config.data.root,
                                    "val_levels": rows}),
        }
        if integer is not None:
            metadata["integer_hyper"] = json.dumps(integer)
        path = self.product(config)
        assert path is not None
        save_codec_file(codec, path, metadata)
        log(f"codec weights -> {path}")
        return path


#: Training patches whose activations choose the channels a narrower synthesis keeps (``rd.init``).
_NARROW_PATCHES = 256
#: The decoder stacks a run can narrow from ``rd.init``'s: (module, config key of its width, the key it defaults to).
_NARROWABLE = (("synthesis", "synthesis_channels", "channels"),
               ("hyper_synthesis", "hyper_synthesis_channels", "hyper_channels"))


def save_codec_file(codec: nn.Module, path: Path, metadata: dict[str, str]) -> None:
    """Write a codec's weights and coding tables as a ``.safetensors`` codec file (what ``load_codec`` reads;
    int64 buffers stored as int32), atomically, with the usual permissions."""
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous() for k, v in codec.state_dict().items()}
    state = {k: (v.to(torch.int32) if v.dtype == torch.int64 else v) for k, v in state.items()}
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(state, str(tmp), metadata=metadata)
    os.chmod(tmp, file_mode())  # the usual permissions (safetensors writes 0600)
    tmp.replace(path)


def codec_kwargs(config: ModelConfig) -> dict[str, Any]:
    """A codec's constructor arguments from the model section (``base_channels`` is the codec's ``channels``)."""
    return {"channels": config.base_channels, "latent_channels": config.latent_channels, **config.options}


def make_objective(config: TrainConfig) -> Objective:
    """The objective ``config.objective`` names."""
    if config.objective == "rd":
        return RDObjective(config)
    if config.objective == "autoencoder":
        return AutoencoderObjective.from_config(config)
    raise BadInputError(f"config: objective must be one of {', '.join(OBJECTIVES)}, got {config.objective!r}")


# ------------------------------------------------------------------------------------- rate-distortion helpers
def load_patches(root: str | Path, split: str) -> torch.Tensor:
    """All patches of one split as a float32 tensor (N, 1, P, P) in [0, 1]."""
    manifest = load_manifest(root)
    patches = np.load(Path(root) / manifest["files"][split]["patches"])
    return torch.from_numpy(patches.astype(np.float32) / UINT16_SCALE).unsqueeze(1)


def image_db_spans(manifest: dict[str, Any]) -> np.ndarray[Any, np.dtype[np.float32]]:
    """dB span (db_hi - db_lo) of each source image of a dataset manifest, float32."""
    p = [im["preprocessing_params"] for im in manifest["images"]]
    return np.array([q["db_hi"] - q["db_lo"] for q in p], dtype=np.float32)


def patch_db_ranges(root: str | Path, split: str) -> torch.Tensor:
    """dB span (db_hi - db_lo) of each patch's source image, (N,) float32."""
    manifest = load_manifest(root)
    index = np.load(Path(root) / manifest["files"][split]["index"])
    return torch.from_numpy(image_db_spans(manifest)[index[:, 0]])


def looks_speckle(looks: torch.Tensor, shape: torch.Size | tuple[int, ...], generator: torch.Generator
                  ) -> torch.Tensor:
    """Unit-mean L-look intensity speckle, Gamma(L, 1/L), for integer ``looks`` (broadcast to ``shape``; 1..3):
    the mean of L unit exponentials, all drawn from ``generator`` (``torch._standard_gamma`` would draw from
    PyTorch's global generator whatever it is given)."""
    top = int(looks.max())
    uniform = torch.rand((top, *shape), generator=generator)
    exponential = -torch.log1p(-uniform)  # uniform in [0, 1): finite, >= 0
    used = torch.arange(top, dtype=looks.dtype).view(-1, *[1] * len(shape)) < looks
    return (exponential * used).sum(0) / looks


def add_speckle(x: torch.Tensor, spans: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Patches as if from fewer looks: multiply the intensity by L-look gamma speckle (L in 1..3), then re-map the
    patch to [0, 1] with its clip range widened to the new 0.1/99.9 percentiles.

    The training scenes are mostly multi-looked GRD/RTC products; single-look data (SLC-derived Sentinel-1, MSTAR)
    has much stronger speckle. ``x``: (N, 1, P, P) in [0, 1]; ``spans``: (N,) dB span of each patch's image.
    """
    n = x.shape[0]
    looks = torch.randint(1, 4, (n, 1, 1, 1), generator=generator).float()
    gamma = looks_speckle(looks, x.shape, generator)
    db = x * spans.view(-1, 1, 1, 1) + 10 * torch.log10(gamma.clamp_min(1e-12))
    flat = db.flatten(1)
    lo = torch.minimum(torch.quantile(flat, 0.001, dim=1), torch.zeros(n)).view(-1, 1, 1, 1)
    hi = torch.maximum(torch.quantile(flat, 0.999, dim=1), spans).view(-1, 1, 1, 1)
    return ((db - lo) / (hi - lo)).clamp(0, 1)


def rd_terms(out: dict[str, Any], x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample MSE (float32) and bits per pixel (from the likelihoods) of a codec's forward pass on ``x``."""
    pixels = x.shape[-1] * x.shape[-2]
    bpp = torch.stack([-torch.log2(lik).flatten(1).sum(1) for lik in out["likelihoods"]]).sum(0) / pixels
    mse = ((out["x_hat"].float() - x) ** 2).flatten(1).mean(1)
    return mse, bpp


def rd_loss(out: dict[str, Any], x: torch.Tensor, lambdas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-sample ``lambda * MSE + bpp`` averaged over the batch; also returns the mean MSE and mean bpp."""
    mse, bpp = rd_terms(out, x)
    return (lambdas * mse + bpp).mean(), mse.mean(), bpp.mean()


@torch.no_grad()
def evaluate_levels(model: RDCodec, patches: torch.Tensor, batch_size: int = 64) -> list[dict[str, float]]:
    """Estimated bpp (from likelihoods) and PSNR of every quality level on ``patches`` (eval mode)."""
    model.eval()
    device = next(model.parameters()).device
    rows = []
    for level in range(1, model.num_levels + 1):
        bits = 0.0
        sq = 0.0
        for start in range(0, len(patches), batch_size):
            x = patches[start : start + batch_size].to(device)
            out = model(x, torch.full((len(x),), float(level), device=device))
            bits += float(sum(-torch.log2(lik).sum() for lik in out["likelihoods"]))
            sq += float(((out["x_hat"].clamp(0, 1) - x) ** 2).sum())
        n = patches.numel()
        rows.append({"quality": level, "bpp": bits / n, "psnr": 10 * math.log10(1 / max(sq / n, 1e-12))})
    return rows
