"""Experiment record (sarcodec 0.7.1, not part of the package): encoder-side latent refinement.

Before entropy coding, each tile's latent is optimised on lambda * MSE + rate with stochastic Gumbel annealing
(Yang et al. 2020, "Improving inference for neural image compression") over the shipped hyperprior, the decoder
unchanged; then the real file is written and decoded and scored with the benchmark's metrics against JPEG 2000.

    STEPS=0 python results/codec/encoder_side/latent_refinement.py IMAGE...       # no refinement
    STEPS=100 LR=0.002 python results/codec/encoder_side/latent_refinement.py IMAGE...
    MODE=ste ...                                                                  # straight-through instead of SGA
"""
import sys, os, math, time, tempfile, numpy as np, torch
from pathlib import Path
import torch.nn.functional as F
from sarcodec.models.codecs.base import RDCodec
from sarcodec.codec.api import compress, decompress
from sarcodec.evaluate import load_reference
from sarcodec.bench.classical import CLASSICAL_CODECS
from sarcodec.bench.bd import bd_metrics

STEPS = int(os.environ.get("STEPS", "100")); LR = float(os.environ.get("LR", "0.002")); MODE = os.environ.get("MODE", "sga")
orig_analyze = RDCodec.analyze
def analyze(self, x, valid=None):
    a = orig_analyze(self, x, valid)
    a.x = x; a.valid = valid
    return a
RDCodec.analyze = analyze

def sga(v, tau):
    fl = torch.floor(v); ce = fl + 1
    r = v - fl
    lf = -torch.atanh(torch.clamp(r, -1 + 1e-5, 1 - 1e-5)) / tau
    lc = -torch.atanh(torch.clamp(1 - r, -1 + 1e-5, 1 - 1e-5)) / tau
    logits = torch.stack([lf, lc], -1)
    p = F.gumbel_softmax(logits, tau=tau, hard=False)
    return p[..., 0] * fl + p[..., 1] * ce

def lam_of(model, q):
    qq = min(max(q - 1, 0), model.num_levels - 1); lo = min(int(qq), model.num_levels - 2); t = qq - lo
    return math.exp(math.log(model.lambdas[lo]) * (1 - t) + math.log(model.lambdas[lo + 1]) * t)

orig_encode = RDCodec.encode_analysis
def encode_analysis(self, analysis, quality, reconstruct=True):
    if STEPS == 0: return orig_encode(self, analysis, quality, reconstruct)
    torch.manual_seed(0)
    q = torch.tensor([float(quality)])
    lam = lam_of(self, float(quality))
    x = analysis.x.float()
    from sarcodec.models.base import pad_to_multiple
    xp, _ = pad_to_multiple(x, self.downsampling_factor_total())
    H, W = analysis.height, analysis.width
    mask = torch.zeros_like(xp); mask[..., :H, :W] = 1
    if analysis.valid is not None:
        mask[..., :H, :W] = torch.from_numpy(np.asarray(analysis.valid, dtype=np.float32))
    with torch.enable_grad():
        for p in self.parameters(): p.requires_grad_(False)
        gain, inv = self.gains(q)
        v = (analysis.y * gain).detach().clone().requires_grad_(True)
        opt = torch.optim.Adam([v], lr=LR)
        npix = mask.sum()
        for t in range(STEPS):
            tau = max(0.5 * math.exp(-4.0 * t / STEPS) , 0.01)  # anneal
            z = self.hyper_analysis(v)
            z_s = sga(z, tau) if MODE == "sga" else z + (torch.round(z) - z).detach()
            lik_z = self.hyper_density.likelihood(z_s)
            means, raw = self.hyper_synthesis(z_s).chunk(2, 1)
            scales = F.softplus(raw)
            y_s = means + (sga(v - means, tau) if MODE == "sga" else (v - means) + (torch.round(v - means) - (v - means)).detach())
            lik_y = self.conditional.likelihood(y_s, scales, means)
            xh = self.synthesis(y_s * inv)
            d = (((xh - xp) ** 2) * mask).sum() / npix
            r = (-torch.log2(lik_y).sum() - torch.log2(lik_z).sum()) / npix
            loss = lam * d + r
            opt.zero_grad(); loss.backward(); opt.step()
        analysis.y = (v.detach() / gain)
    return orig_encode(self, analysis, quality, reconstruct)
RDCodec.encode_analysis = encode_analysis

files = sys.argv[1:]
scratch = Path(tempfile.mkdtemp())
j2k = CLASSICAL_CODECS["jpeg2000"]
QS = [float(s) for s in os.environ.get("QS", "1 2 3 4 5 6 7 8").split()]
for f in files:
    image = load_reference(f, None)
    anchor = []
    for s in j2k[0]:
        nb, xh, inten, _, _ = j2k[2](image, s, scratch)
        anchor.append((nb * 8 / image.x.size, image.score(xh, inten).psnr))
    pts = []
    for qv in QS:
        out = scratch / "o.sarc"
        t0 = time.time()
        res = compress(image.raw, out, quality=qv, units=image.params.units, nodata=image.params.nodata, device="cpu", runtime="torch", overwrite=True)
        t1 = time.time()
        dec = decompress(out, device="cpu").array
        xh, inten = image.decoded(dec)
        sc = image.score(xh, inten)
        pts.append((res.bytes * 8 / image.x.size, sc.psnr))
        print(f"{image.name[:30]} q{qv} {pts[-1][0]:.4f} bpp {sc.psnr:.3f} dB peak {sc.peak_db:.2f} f1 {sc.cfar_f1:.3f} hom {sc.hom_bias_db:+.3f} enc {t1-t0:.1f}s", flush=True)
    if len(pts) > 3:
        print(f"{image.name[:30]} BD vs J2K {bd_metrics(anchor, pts)[0]:+.2f}%", flush=True)
