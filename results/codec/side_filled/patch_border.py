"""Experiment record (sarcodec 0.7.11): do 64-px training patches teach the hyperprior a border-heavy regime?

The shipped codec's estimated rate and PSNR at every quality on the 128 validation patches of 128 px
(`sarcodec prepare ... -o outputs/codec_p128x --patch-size 128 --stride 64`, the scene regexes of
configs/codec/hyperprior_extra.yaml), whole and cut into four 64-px patches each; BD-rate of the cut against the
whole (0.1-4 bpp).

    python results/codec/side_filled/patch_border.py
"""
import torch
from sarcodec.codec.registry import load_codec
from sarcodec.train.objectives import evaluate_levels, load_patches
from sarcodec.bench.bd import bd_metrics
torch.set_num_threads(2)
val = load_patches("outputs/codec_p128x", "val")
print(val.shape)
split = val.unfold(2, 64, 64).unfold(3, 64, 64)  # N,1,2,2,64,64
split = split.permute(0, 2, 3, 1, 4, 5).reshape(-1, 1, 64, 64).contiguous()
m = load_codec("sarcodec/weights/hyperprior.safetensors").model
a = evaluate_levels(m, val); b = evaluate_levels(m, split)
for r, s in zip(a, b): print(r["quality"], f"{r['bpp']:.4f}/{r['psnr']:.2f}  split {s['bpp']:.4f}/{s['psnr']:.2f}")
print("BD split vs whole:", bd_metrics([(r["bpp"], r["psnr"]) for r in a], [(r["bpp"], r["psnr"]) for r in b], bd_range=(0.1, 4.0)))
