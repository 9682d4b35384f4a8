"""DistributedDataParallel through torchrun: two CPU processes (gloo), rank 0 alone writes files."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sarcodec.train import load_checkpoint

REPO = Path(__file__).resolve().parents[2]
_DIST_VARS = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "SARCODEC_DEBUG")


def _torchrun(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in _DIST_VARS}
    # --standalone: a local rendezvous on a free port; nothing leaves the machine
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env, timeout=180)


@pytest.mark.slow
def test_torchrun_two_processes(tiny_config_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    proc = _torchrun("-m", "sarcodec", "train", str(tiny_config_file), "--epochs", "1", "--limit-batches", "2",
                     "--output-dir", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = load_checkpoint(out / "last.pth")
    assert ckpt["world_size"] == 2 and ckpt["epoch"] == 1 and ckpt["step"] == 2
    assert ckpt["history"][-1]["epoch"] == 1 and ckpt["history"][-1]["val_patches"] == 18  # 9 + 9: all val, no padding
    assert not any(k.startswith("module.") for k in ckpt["model_state_dict"])
    assert (out / "best.pth").is_file() and len(list(out.glob("events.out.tfevents.*"))) == 1
    assert proc.stderr.count("epoch 1/1") == 1 and proc.stdout.count("done: 1 epoch(s)") == 1  # rank 0 only


_NAN_ON_ONE_RANK = """
    import math, os, sys
    import torch
    import sarcodec.train.objectives as objectives
    from sarcodec.losses import CombinedLoss
    from sarcodec.train import load_config, train

    class NaNOnRank1(CombinedLoss):  # rank 1's second training loss is NaN; rank 0's is not
        calls = 0
        def forward(self, pred, target, mask=None):
            out = super().forward(pred, target, mask)
            if torch.is_grad_enabled():
                NaNOnRank1.calls += 1
                if os.environ["RANK"] == "1" and NaNOnRank1.calls == 2:
                    out["loss"] = out["loss"] * math.nan
            return out

    objectives.CombinedLoss = NaNOnRank1
    config = load_config(sys.argv[1], [("output_dir", sys.argv[2]), ("limit_batches", 3)])
    result = train(config)
    # one write per rank: print() with several arguments writes them separately and two ranks interleave
    sys.stdout.write(f"rank {os.environ['RANK']} skipped {result.history[0]['nonfinite_steps']}\\n")
    sys.stdout.flush()
"""


@pytest.mark.slow
def test_torchrun_ranks_skip_a_nan_step_together(tiny_config_file: Path, tmp_path: Path) -> None:
    script = tmp_path / "nan_run.py"
    script.write_text(textwrap.dedent(_NAN_ON_ONE_RANK))
    proc = _torchrun(str(script), str(tiny_config_file), str(tmp_path / "ddp"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "rank 0 skipped 1" in proc.stdout and "rank 1 skipped 1" in proc.stdout  # no hang, no divergence
    ckpt = load_checkpoint(tmp_path / "ddp" / "last.pth")
    assert ckpt["step"] == 3 and ckpt["history"][-1]["nonfinite_steps"] == 1
