"""Experiment (issue 10, not part of the package): can a lighter synthesis decode the shipped default's bitstream?

The default's encoder, hyper-decoder and entropy model are kept frozen, so the symbols, and the rate, stay exactly
the default's; only the synthesis (conv 48->C, IGDN, deconv C->C, IGDN, deconv C->1; C = 64 shipped) is replaced by
one with fewer channels, initialised from the default's by keeping its C most active channels, and trained on
``lambda(level) * MSE`` against the original patch (what the default's synthesis was trained on). Then every
quality's PSNR on the validation patches is compared at equal rate: the student's minus the teacher's.

    python results/codec/light_synthesis/student.py outputs/codec_p64 --channels 32 --minutes 60 -o OUT_DIR
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader

from sarcodec.codec.registry import load_codec
from sarcodec.data.dataset import PatchDataset
from sarcodec.models.codecs.hyperprior import round_around
from sarcodec.models.layers import GDN


def latents(teacher, x, levels):
    """The dequantized latents the decoder sees (before the inverse gain), as coding computes them in float."""
    gain, inverse = teacher.gains(levels)
    y = teacher.analysis(x) * gain
    z_hat = torch.round(teacher.hyper_analysis(y))  # the factorized density codes rounded z (clamped to its tables)
    means, _ = teacher.hyper_synthesis(z_hat).chunk(2, dim=1)
    return round_around(y, means) * inverse


def activity(teacher, loader, batches=20):
    """Mean squared activation of each hidden channel of the teacher's synthesis (after each IGDN)."""
    acts = [0.0, 0.0]
    for i, batch in enumerate(loader):
        if i == batches:
            break
        x = batch["image"]
        levels = torch.randint(1, teacher.num_levels + 1, (x.shape[0],)).float()
        h = latents(teacher, x, levels)
        s = teacher.synthesis
        a1 = s[1](s[0](h))
        a2 = s[3](s[2](a1))
        acts[0] = acts[0] + (a1 ** 2).mean(dim=(0, 2, 3))
        acts[1] = acts[1] + (a2 ** 2).mean(dim=(0, 2, 3))
    return acts


def student_from(teacher, keep1, keep2):
    """The teacher's synthesis restricted to the hidden channels keep1 (after the first conv) and keep2 (after the
    middle deconv)."""
    s = teacher.synthesis
    c1, c2 = len(keep1), len(keep2)
    conv0 = nn.Conv2d(s[0].in_channels, c1, 3, padding=1)
    conv0.weight.data = s[0].weight.data[keep1].clone(); conv0.bias.data = s[0].bias.data[keep1].clone()
    g1 = GDN(c1, inverse=True); g2 = GDN(c2, inverse=True)
    for g, src, keep in ((g1, s[1], keep1), (g2, s[3], keep2)):
        sd = src.state_dict()
        new = {}
        for k, v in sd.items():
            if v.ndim == 1:
                new[k] = v[keep].clone()
            elif v.ndim == 2:
                new[k] = v[keep][:, keep].clone()
            else:
                raise SystemExit(f"unexpected GDN parameter {k} {tuple(v.shape)}")
        g.load_state_dict(new)
    d1 = nn.ConvTranspose2d(c1, c2, 5, stride=2, padding=2, output_padding=1)
    d1.weight.data = s[2].weight.data[keep1][:, keep2].clone(); d1.bias.data = s[2].bias.data[keep2].clone()
    d2 = nn.ConvTranspose2d(c2, 1, 5, stride=2, padding=2, output_padding=1)
    d2.weight.data = s[4].weight.data[keep2].clone(); d2.bias.data = s[4].bias.data.clone()
    return nn.Sequential(conv0, g1, d1, g2, d2)


@torch.no_grad()
def evaluate(teacher, student, loader):
    """PSNR (x_norm, per quality level, over all validation patches) of the teacher's and the student's synthesis."""
    n = teacher.num_levels
    se_t = torch.zeros(n, dtype=torch.float64); se_s = torch.zeros(n, dtype=torch.float64); count = 0
    for batch in loader:
        x = batch["image"]
        for level in range(1, n + 1):
            h = latents(teacher, x, torch.full((x.shape[0],), float(level)))
            se_t[level - 1] += ((teacher.synthesis(h).clamp(0, 1) - x) ** 2).double().sum()
            se_s[level - 1] += ((student(h).clamp(0, 1) - x) ** 2).double().sum()
        count += x.numel()
    psnr = lambda se: [round(-10 * math.log10(v / count), 4) for v in se.tolist()]
    return psnr(se_t), psnr(se_s)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("data")
    p.add_argument("--channels", type=int, default=32)
    p.add_argument("--minutes", type=float, default=60)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--eval-every", type=float, default=15, help="minutes")
    p.add_argument("--fresh", action="store_true", help="initialise the student at random instead of pruning")
    p.add_argument("-o", "--output", required=True)
    args = p.parse_args()
    torch.manual_seed(0)
    out = Path(args.output); out.mkdir(parents=True, exist_ok=True)
    teacher = load_codec("hyperprior").model.float().eval().requires_grad_(False)
    train = DataLoader(PatchDataset(args.data, "train", augment=True), batch_size=args.batch, shuffle=True,
                       drop_last=True)
    val = DataLoader(PatchDataset(args.data, "val"), batch_size=64)
    with torch.no_grad():
        a1, a2 = activity(teacher, train)
    keep1 = torch.argsort(a1, descending=True)[: args.channels].sort().values
    keep2 = torch.argsort(a2, descending=True)[: args.channels].sort().values
    student = student_from(teacher, keep1, keep2)
    if args.fresh:
        torch.manual_seed(0)
        for m in student.modules():
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()
        student[1].beta.data.fill_(1.0); student[1].gamma.data = 0.1 * torch.eye(args.channels)
        student[3].beta.data.fill_(1.0); student[3].gamma.data = 0.1 * torch.eye(args.channels)
    t_psnr, s_psnr = evaluate(teacher, student, val)
    log = {"channels": args.channels, "teacher_psnr": t_psnr, "evals": [{"step": 0, "minutes": 0.0, "psnr": s_psnr}]}
    print("teacher", t_psnr, "\nstudent (pruned, step 0)", s_psnr, flush=True)
    lambdas = torch.tensor(teacher.lambdas)
    opt = torch.optim.Adam(student.parameters(), lr=args.lr)
    budget = args.minutes * 60
    start = time.perf_counter(); step = 0; next_eval = args.eval_every * 60; running = 0.0
    best = (float("-inf"), None)
    while True:
        for batch in train:
            elapsed = time.perf_counter() - start
            for group in opt.param_groups:  # cosine to 2 % of lr over the budget
                group["lr"] = args.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(elapsed / budget, 1))))
            x = batch["image"]
            levels = torch.randint(1, teacher.num_levels + 1, (x.shape[0],))
            with torch.no_grad():
                h = latents(teacher, x, levels.float())
            mse = ((student(h) - x) ** 2).flatten(1).mean(1)
            loss = (lambdas[levels - 1] * mse).mean()
            opt.zero_grad(); loss.backward()
            torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
            opt.step(); step += 1
            running = 0.99 * running + 0.01 * float(loss.detach())
            if step % 500 == 0:
                print(f"step {step} {elapsed / 60:.1f} min loss {running:.4f}", flush=True)
            if elapsed >= next_eval or elapsed >= budget:
                _, s_psnr = evaluate(teacher, student, val)
                log["evals"].append({"step": step, "minutes": round(elapsed / 60, 2), "psnr": s_psnr})
                diff = [round(s - t, 4) for s, t in zip(s_psnr, t_psnr)]
                print(f"eval step {step}: student - teacher {diff}", flush=True)
                if sum(diff) > best[0]:
                    best = (sum(diff), copy.deepcopy(student.state_dict()))
                    torch.save(best[1], out / "student.pt")
                (out / "log.json").write_text(json.dumps(log, indent=1))
                next_eval += args.eval_every * 60
                if elapsed >= budget:
                    return


if __name__ == "__main__":
    main()
