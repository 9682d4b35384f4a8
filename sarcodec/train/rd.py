"""Training of the rate-distortion codecs (``sarcodec.codec.models``): ``lambda * MSE + bpp``, all levels at once.

Run it as ``python -m sarcodec.train.rd --config configs/codec/hyperprior.yaml`` (fields can be overridden with
``--set key=value``). The training split of a dataset made by ``sarcodec prepare`` is loaded into memory whole
(6062 patches of 64 x 64 are 100 MB as float32); every step draws a random batch, one random flip/rotation and
a random quality level per patch. AdamW with linear warmup then cosine decay, gradient clipping, a NaN/Inf guard,
a separate Adam for the entropy models' tail quantiles, and a wall-clock budget: after 20 steps, and every 500
steps, the step count is refitted to the time left so the cosine schedule ends when the budget does (GPU when
there is one).

The output is ``<out>/<name>.safetensors``: the weights (float32) and integer coding tables, with the
architecture, config, lambdas and training summary in the safetensors metadata -- loaded by
``sarcodec.codec.registry.load_codec`` without unpickling anything.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from safetensors.torch import save_file

from sarcodec.codec.models import RDCodec, create_codec
from sarcodec.data.dataset import dihedral
from sarcodec.data.prepare import UINT16_SCALE, load_manifest

__all__ = ["RDTrainConfig", "evaluate_levels", "load_patches", "rd_loss", "train_codec"]


@dataclasses.dataclass
class RDTrainConfig:
    """One codec training run."""

    name: str = "hyperprior"
    codec: str = "hyperprior"
    codec_config: dict[str, Any] = dataclasses.field(default_factory=dict)
    data: str = "outputs/codec_p64"
    out: str = "outputs/codec"
    batch_size: int = 16
    lr: float = 3e-4
    aux_lr: float = 1e-3
    weight_decay: float = 0.0
    warmup_steps: int = 200
    steps: int = 0  # 0: fitted to time_budget_minutes
    time_budget_minutes: float = 30.0
    grad_clip: float = 1.0
    seed: int = 0
    log_every: int = 200
    init: str = ""  # a codec .safetensors to start from (fine-tuning); its architecture and config must match
    speckle_prob: float = 0.0  # fraction of patches given extra 1..3-look speckle (see add_speckle)


def load_patches(root: str | Path, split: str) -> torch.Tensor:
    """All patches of one split as a float32 tensor (N, 1, P, P) in [0, 1]."""
    manifest = load_manifest(root)
    patches = np.load(Path(root) / manifest["files"][split]["patches"])
    return torch.from_numpy(patches.astype(np.float32) / UINT16_SCALE).unsqueeze(1)


def patch_db_ranges(root: str | Path, split: str) -> torch.Tensor:
    """dB span (db_hi - db_lo) of each patch's source image, (N,) float32."""
    manifest = load_manifest(root)
    index = np.load(Path(root) / manifest["files"][split]["index"])
    p = [im["preprocessing_params"] for im in manifest["images"]]
    spans = np.array([q["db_hi"] - q["db_lo"] for q in p], dtype=np.float32)
    return torch.from_numpy(spans[index[:, 0]])


def add_speckle(x: torch.Tensor, spans: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Patches as if from fewer looks: multiply the intensity by L-look gamma speckle (L in 1..3), then re-map the
    patch to [0, 1] with its clip range widened to the new 0.1/99.9 percentiles.

    The training scenes are mostly multi-looked GRD/RTC products; single-look data (SLC-derived Sentinel-1, MSTAR)
    has much stronger speckle. ``x``: (N, 1, P, P) in [0, 1]; ``spans``: (N,) dB span of each patch's image.
    """
    n = x.shape[0]
    looks = torch.randint(1, 4, (n, 1, 1, 1), generator=generator).float()
    gamma = torch._standard_gamma(looks.expand_as(x).contiguous()) / looks  # noqa: SLF001 (seedable via manual_seed)
    db = x * spans.view(-1, 1, 1, 1) + 10 * torch.log10(gamma.clamp_min(1e-12))
    flat = db.flatten(1)
    lo = torch.minimum(torch.quantile(flat, 0.001, dim=1), torch.zeros(n)).view(-1, 1, 1, 1)
    hi = torch.maximum(torch.quantile(flat, 0.999, dim=1), spans).view(-1, 1, 1, 1)
    return ((db - lo) / (hi - lo)).clamp(0, 1)


def rd_loss(out: dict[str, Any], x: torch.Tensor, lambdas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-sample ``lambda * MSE + bpp`` averaged over the batch; also returns the mean MSE and mean bpp."""
    pixels = x.shape[-1] * x.shape[-2]
    bits = torch.stack([-torch.log2(lik).flatten(1).sum(1) for lik in out["likelihoods"]]).sum(0)
    bpp = bits / pixels
    mse = ((out["x_hat"] - x) ** 2).flatten(1).mean(1)
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


def _lr_factor(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * progress))


def train_codec(config: RDTrainConfig) -> Path:
    """Train one codec; returns the path of the written ``.safetensors``."""
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    train = load_patches(config.data, "train").to(device)
    spans = patch_db_ranges(config.data, "train")
    val = load_patches(config.data, "val")
    model = create_codec(config.codec, **config.codec_config).to(device)
    if config.init:
        from sarcodec.codec.registry import load_codec

        start_from = load_codec(config.init).model
        if start_from.config != model.config:
            raise ValueError(f"init {config.init} has config {start_from.config}, the run wants {model.config}")
        weights = {k: v for k, v in start_from.state_dict().items() if "table_" not in k}
        model.load_state_dict(weights, strict=False)
        print(f"initialised from {config.init}", flush=True)
    lambdas = torch.tensor(model.lambdas, device=device)
    aux_params = [p for n, p in model.named_parameters() if n.endswith("quantiles")]
    main_params = [p for n, p in model.named_parameters() if not n.endswith("quantiles")]
    optimizer = torch.optim.AdamW(main_params, lr=config.lr, weight_decay=config.weight_decay)
    aux_optimizer = torch.optim.Adam(aux_params, lr=config.aux_lr)
    total = config.steps or 10**9
    start = time.monotonic()
    budget = config.time_budget_minutes * 60
    step = 0
    mark = (0, start)
    skipped = 0
    running = {"loss": 0.0, "mse": 0.0, "bpp": 0.0}
    model.train()
    while step < total:
        if config.steps == 0 and (step == 20 or (step > 0 and step % 500 == 0)):
            # Refit the schedule's length to the time left, at the speed of the recent steps.
            now = time.monotonic()
            per_step = (now - mark[1]) / max(1, step - mark[0])
            total = max(step + 1, step + int((budget - (now - start)) / per_step))
            mark = (step, now)
            if step == 20:
                print(f"{per_step * 1000:.0f} ms/step: {total} steps fit {config.time_budget_minutes} min", flush=True)
        for group in optimizer.param_groups:
            group["lr"] = config.lr * _lr_factor(step, total, config.warmup_steps)
        idx = torch.randint(len(train), (config.batch_size,), generator=generator).to(device)
        x = train[idx]
        if config.speckle_prob > 0:
            chosen = torch.rand(config.batch_size, generator=generator) < config.speckle_prob
            if chosen.any():
                x = x.clone()
                x[chosen.to(device)] = add_speckle(x[chosen.to(device)].cpu(), spans[idx.cpu()][chosen], generator).to(device)
        k = int(torch.randint(8, (1,), generator=generator))
        x = dihedral(x, k)
        levels = torch.randint(model.num_levels, (config.batch_size,), generator=generator).to(device)
        out = model(x, levels.float() + 1)
        loss, mse, bpp = rd_loss(out, x, lambdas[levels])
        if not torch.isfinite(loss):
            skipped += 1
            if skipped > 20:
                raise RuntimeError("20 non-finite losses in a row: stopping")
            step += 1
            continue
        skipped = 0
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        torch.nn.utils.clip_grad_norm_(main_params, config.grad_clip)
        optimizer.step()
        aux = model.aux_loss()
        aux_optimizer.zero_grad(set_to_none=True)
        aux.backward()  # type: ignore[no-untyped-call]
        aux_optimizer.step()
        running["loss"] += float(loss.detach())
        running["mse"] += float(mse.detach())
        running["bpp"] += float(bpp.detach())
        step += 1
        if step % config.log_every == 0:
            n = config.log_every
            print(
                f"step {step}/{total} loss {running['loss'] / n:.4f} mse {running['mse'] / n:.5f} "
                f"bpp {running['bpp'] / n:.3f} aux {float(aux.detach()):.1f} {(time.monotonic() - start) / 60:.1f} min",
                flush=True,
            )
            running = dict.fromkeys(running, 0.0)
    model.eval()
    model.update_tables()
    rows = evaluate_levels(model, val[:512])
    for row in rows:
        print(f"val quality {row['quality']}: {row['bpp']:.3f} bpp {row['psnr']:.2f} dB", flush=True)
    out_dir = Path(config.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{config.name}.safetensors"
    metadata = {
        "format": "sarcodec-codec",
        "version": "1",
        "codec": model.codec_name,
        "config": json.dumps(model.config),
        "training": json.dumps(
            {
                **dataclasses.asdict(config),
                "steps_done": step,
                "minutes": round((time.monotonic() - start) / 60, 2),
                "device": device.type,
                "val_levels": rows,
            }
        ),
    }
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    state = {k: (v.to(torch.int32) if v.dtype == torch.int64 else v) for k, v in state.items()}
    tmp = path.with_suffix(".tmp")
    save_file(state, str(tmp), metadata=metadata)
    tmp.replace(path)
    print(f"wrote {path}", flush=True)
    return path


def _parse_value(text: str) -> Any:
    return yaml.safe_load(text)


def main(argv: list[str] | None = None) -> None:
    """Command line: ``python -m sarcodec.train.rd --config FILE [--set key=value ...]``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    fields = yaml.safe_load(Path(args.config).read_text()) or {}
    for item in args.set:
        key, _, value = item.partition("=")
        fields[key] = _parse_value(value)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    train_codec(RDTrainConfig(**fields))


if __name__ == "__main__":
    main()
