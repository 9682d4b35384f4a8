"""``sarcodec train`` and ``sarcodec info CHECKPOINT``: exit codes and one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sarcodec.cli import main
from sarcodec.train import load_checkpoint


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("SARCODEC_DEBUG", "WORLD_SIZE", "RANK")}
    return subprocess.run([sys.executable, "-m", "sarcodec", *args], capture_output=True, text=True, env=env,
                          timeout=120)


def one_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def test_train_smoke_run(tiny_config_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = run_cli("train", str(tiny_config_file), "--epochs", "1", "--limit-batches", "2", "--output-dir", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "done: 1 epoch(s)" in proc.stdout
    assert "parameters" in proc.stderr and "epoch 1/1" in proc.stderr  # the model summary and the epoch line
    ckpt = torch.load(out / "best.pth", weights_only=True)
    assert ckpt["epoch"] == 1 and ckpt["step"] == 2 and ckpt["config"]["limit_batches"] == 2


def test_train_bad_config_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: {name: residual}\noptim: {learning_rate: 0.1}\n")
    proc = run_cli("train", str(bad), "--epochs", "1")
    assert proc.returncode == 2
    assert "unknown key optim.learning_rate" in one_line(proc.stderr)


@pytest.mark.parametrize("extra, needle, code", [
    (["--set", "optim.lr"], "--set expects KEY=VALUE", 2),
    (["--set", "data.root=/nonexistent/ds"], "not a sarcodec dataset", 2),
    (["--set", "data.batch_size=0"], "data.batch_size must be at least 1", 2),
    (["--resume", "/nonexistent/last.pth"], "no checkpoint to resume from", 2),
    (["--epochs", "0"], "must be a positive integer", 2),
])
def test_train_bad_arguments(tiny_config_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                             extra: list[str], needle: str, code: int) -> None:
    args = ["train", str(tiny_config_file), "--output-dir", str(tmp_path / "out"), *extra]
    if extra[0] == "--epochs":
        with pytest.raises(SystemExit) as info:
            main(args)
        assert info.value.code == code
    else:
        assert main(args) == code
    assert needle in one_line(capsys.readouterr().err)


def test_resume_auto_and_info(tiny_config_file: Path, tiny_dataset: Path, tmp_path: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
    out = str(tmp_path / "out")
    assert main(["train", str(tiny_config_file), "--epochs", "1", "--limit-batches", "1", "--output-dir", out]) == 0
    capsys.readouterr()
    assert main(["train", str(tiny_config_file), "--epochs", "1", "--output-dir", out]) == 2
    assert "--resume auto" in one_line(capsys.readouterr().err)
    assert main(["train", str(tiny_config_file), "--epochs", "2", "--limit-batches", "1", "--output-dir", out,
                 "--resume", "auto"]) == 0
    assert load_checkpoint(Path(out) / "last.pth")["epoch"] == 2
    capsys.readouterr()

    assert main(["info", f"{out}/best.pth"]) == 0
    text = capsys.readouterr().out
    assert "model residual(latent_channels=4, base_channels=8, blocks_per_stage=1)" in text
    assert "epoch 2, step 2" in text and "val_psnr" in text and "clip_percentiles" in text
    assert main(["info", out]) == 0 and "model residual" in capsys.readouterr().out  # a run directory
    assert main(["info", str(tiny_dataset)]) == 0  # datasets still work
    assert "train:" in capsys.readouterr().out

    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"not a checkpoint")
    assert main(["info", str(corrupt)]) == 3
    assert "not a readable checkpoint" in one_line(capsys.readouterr().err)
    assert main(["info", str(tmp_path / "missing.pth")]) == 2
    assert "no such checkpoint" in one_line(capsys.readouterr().err)


def test_codec_config_trains_and_its_codec_compresses_real_sar(tmp_path: Path) -> None:
    """The shipped codec config through the CLI on the bundled real samples (narrowed to stay fast): the run's
    .safetensors compresses and decompresses a real scene with --model."""
    root = Path(__file__).parents[2]
    data = tmp_path / "ds"
    proc = run_cli("prepare", str(root / "samples" / "opera"), str(root / "samples" / "ssl4eo"), "-o", str(data),
                   "--patch-size", "32", "--stride", "32")
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "run"
    proc = run_cli("train", str(root / "configs" / "codec" / "hyperprior.yaml"), "--data", str(data),
                   "--output-dir", str(out), "--epochs", "1", "--limit-batches", "2", "--device", "cpu",
                   "--set", "model.base_channels=8", "--set", "model.latent_channels=4",
                   "--set", "model.hyper_channels=8", "--set", "model.hyper_latent_channels=4",
                   "--set", "data.batch_size=4", "--set", "num_sample_images=1")
    assert proc.returncode == 0, proc.stderr
    assert "(rd): model hyperprior(" in proc.stderr and "bpp" in proc.stderr
    weights = out / "hyperprior.safetensors"
    scene = next((root / "samples" / "opera").glob("*.tif"))
    sarc, decoded = tmp_path / "x.sarc", tmp_path / "x.tif"
    proc = run_cli("compress", str(scene), "-o", str(sarc), "--model", str(weights), "--quality", "4")
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("decompress", str(sarc), "-o", str(decoded), "--model", str(weights))
    assert proc.returncode == 0, proc.stderr
    assert decoded.stat().st_size > 0


def test_gpu_recipe_runs_end_to_end_on_the_cpu(tiny_dataset: Path, tmp_path: Path) -> None:
    """scripts/gpu_codec.sh --run with a pack made from the tiny dataset, two configs side by side, forced onto the
    CPU and narrowed: it unpacks each config's dataset (the last folder of its data.root), trains both, fits their
    epochs to the budget and leaves one archive per run in $OUT (the codec, its history and the log; no
    checkpoints). A config whose dataset is not packed fails with one line, before any training."""
    import tarfile

    root = Path(__file__).parents[2]
    pack = tmp_path / "pack"
    (pack / "whl").mkdir(parents=True)
    with tarfile.open(pack / "codec_p64.tar.xz", "w:xz") as tar:
        tar.add(tiny_dataset, arcname="codec_p64")
    out = tmp_path / "out"
    env = {**os.environ, "SARCODEC_GPU_PACK": str(pack), "OUT": str(out), "PY": sys.executable,
           "TMPDIR": str(tmp_path / "tmp"), "MINUTES": "5", "EPOCHS": "3"}
    (tmp_path / "tmp").mkdir()
    script = str(root / "scripts" / "gpu_codec.sh")
    unpacked = subprocess.run(["bash", script, "--run", "configs/codec/hyperprior.yaml",
                               "configs/codec/hyperprior_extra_scratch.yaml"], capture_output=True, text=True, env=env)
    assert unpacked.returncode == 2 and "its dataset codec_p64x is not in" in unpacked.stderr
    (tmp_path / "bad.yaml").write_text("data: {roots: outputs/codec_p64}\n")  # read as the trainer reads it
    bad = subprocess.run(["bash", script, "--run", str(tmp_path / "bad.yaml")], capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and bad.stderr.strip().endswith("unknown key data.roots (did you mean data.root?)")
    assert not (tmp_path / "tmp" / "sarcodec_gpu" / "runs").exists()
    with tarfile.open(pack / "codec_p64x.tar.xz", "w:xz") as tar:
        tar.add(tiny_dataset, arcname="codec_p64x")
    proc = subprocess.run(
        ["bash", script, "--run", "configs/codec/hyperprior.yaml",
         "configs/codec/hyperprior_extra_scratch.yaml", "--device", "cpu", "--limit-batches", "2",
         "--set", "model.base_channels=8", "--set", "model.latent_channels=4", "--set", "model.hyper_channels=8",
         "--set", "model.hyper_latent_channels=4", "--set", "data.batch_size=4"],
        capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert sorted(p.name for p in out.iterdir()) == [
        "hyperprior.events.tar.gz", "hyperprior.tar.gz",
        "hyperprior_extra_scratch.events.tar.gz", "hyperprior_extra_scratch.tar.gz"]
    for name, data in (("hyperprior", "codec_p64"), ("hyperprior_extra_scratch", "codec_p64x")):
        with tarfile.open(out / f"{name}.tar.gz") as tar:
            names = {Path(m).name for m in tar.getnames()}
            log = tar.extractfile(f"{name}/train.log").read().decode()  # type: ignore[union-attr]
        assert {f"{name}.safetensors", "history.json", "config.yaml", "train.log"} <= names
        assert not any(n.endswith(".pth") for n in names)
        assert "done: 3 epoch(s)" in log  # fitted: 3 epochs of a tiny run fit 5 minutes
        assert f"data {tmp_path / 'tmp' / 'sarcodec_gpu' / data}:" in log  # each config on its own dataset
    assert "== hyperprior_extra_scratch" in proc.stdout
