"""The seed study (04-04 plan): four autoencoder variants at a 16x latent ratio plus a latent-ratio sweep of the
baseline, trained under one budget and evaluated on whole images. ``scripts/seed_study.sh`` and the notebooks
call this module so that they all train and evaluate the same way.

CPU budget (the default): every run gets the same training wall time (``budget_minutes``, validation included);
epochs are 40 batches of 32 patches so even the slowest model validates several times; the cosine schedule's length
is set per model from its measured 2-core throughput so that it anneals within the budget; lr 5e-4 (the configs'
1e-4 is too slow for runs this short); no early stopping. ``full=True`` trains the configs exactly as written (the
seed plan: 30 epochs, lr 1e-4, 5 warmup epochs, early stopping; meant for a GPU).

Seed budget (``budget="seed"``, issue 14): the seed plan's own comparison on the CPU: the 20 % patch subset
(``SEED_FRACTION`` of every scene's patches, still split by scene), the configs as written (30 epochs, lr 1e-4,
5 warmup epochs, cosine, early stopping after 7 epochs without a lower val_loss), the same for every variant.
Separate dataset, runs and results folders, so the 8-minute table stays as a second, labelled table.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sarcodec.data.prepare import PrepareConfig, prepare_dataset

VARIANT_RUNS: tuple[str, ...] = ("baseline_c16", "resnet_lite_c16", "residual_v1_c16", "attention_c16")
SWEEP_RUNS: tuple[str, ...] = ("baseline_c4", "baseline_c8", "baseline_c32", "baseline_c64")
RUNS: tuple[str, ...] = VARIANT_RUNS + SWEEP_RUNS

# Epochs (of 40 batches) that fill about 8 minutes on the 2-core CPU: from measured throughput
# (patches/s at 64 px: baseline ~140, resnet_lite ~54, residual ~15, attention ~13) plus validation time.
CPU_EPOCHS: dict[str, int] = {"baseline": 40, "resnet_lite": 16, "residual": 5, "attention": 4}
CPU_TRAIN_BATCHES_PER_EPOCH = 40
CPU_LR = 5e-4
# The seed plan's "same 20% data subset for fair comparison".
SEED_FRACTION = 0.2


@dataclass(frozen=True)
class StudyPaths:
    """Where the study's pieces live, relative to the repository root."""

    train_inputs: tuple[Path, ...] = (Path("../shared/data/sar/train"), Path("../shared/data/sar/opera"))
    eval_inputs: tuple[Path, ...] = (Path("../shared/data/sar/dev"),)
    dataset: Path = Path("outputs/study_p64")
    runs: Path = Path("runs/seed_study")
    results: Path = Path("results/seed_study")
    configs: Path = Path("configs")
    # the seed plan's checkpoint path for Variant B (notebooks/checkpoints/residual_v1_c16/best.pth)
    residual_dir: Path = Path("notebooks/checkpoints/residual_v1_c16")
    fraction: float = 1.0  # share of each scene's patches kept in the dataset
    full: bool = False  # train the configs as written (the seed budget) instead of the equal-wall-time budget

    def run_dir(self, run: str) -> Path:
        return self.residual_dir if run == "residual_v1_c16" else self.runs / run


def seed_budget_paths() -> StudyPaths:
    """Where the seed-budget study (the seed plan's 20 % subset, equal epochs) keeps its data, runs and results;
    Variant B goes to the seed plan's checkpoint path."""
    return StudyPaths(dataset=Path("outputs/study_p64_f20"), runs=Path("runs/seed_budget"),
                      results=Path("results/seed_study/seed_budget"),
                      residual_dir=Path("notebooks/checkpoints/seed_budget/residual_v1_c16"), fraction=SEED_FRACTION,
                      full=True)


def notebook_setup(budget: str, scratch: Path | None = None) -> tuple[StudyPaths, list[str]]:
    """Paths and extra overrides for the notebooks: ``"seed"`` reuses the seed-budget study's data and checkpoints
    (training what is missing at that budget: 30 epochs each, hours on a CPU); ``"study"`` the 8-minute CPU
    study's; ``"tiny"`` is a seconds-long smoke run on the bundled sample in ``scratch`` (what the tests execute so
    the notebooks cannot rot)."""
    if budget == "seed":
        return seed_budget_paths(), []
    if budget == "study":
        return StudyPaths(), []
    if budget != "tiny":
        raise ValueError(f"budget must be 'seed', 'study' or 'tiny', got {budget!r}")
    if scratch is None:
        raise ValueError("the tiny budget needs a scratch directory")
    paths = StudyPaths(train_inputs=(Path("samples"),), eval_inputs=(Path("samples/opera"),),
                       dataset=scratch / "dataset", runs=scratch / "runs", results=scratch / "results",
                       residual_dir=scratch / "runs" / "residual_v1_c16")
    return paths, ["epochs=1", "limit_batches=2", "model.base_channels=8", "data.batch_size=4"]


def model_of(run: str) -> str:
    """'residual_v1_c16' -> 'residual', 'resnet_lite_c16' -> 'resnet_lite', 'baseline_c4' -> 'baseline'."""
    return run.rsplit("_c", 1)[0].removesuffix("_v1")


def cpu_budget_overrides(run: str, budget_minutes: float) -> list[str]:
    """The ``--set`` overrides of the equal-wall-time CPU study for one run."""
    epochs = CPU_EPOCHS[model_of(run)]
    return [
        f"epochs={epochs}",
        f"train_batches_per_epoch={CPU_TRAIN_BATCHES_PER_EPOCH}",
        f"time_budget_minutes={budget_minutes:g}",
        f"optim.lr={CPU_LR:g}",
        f"optim.warmup_epochs={max(0.5, epochs / 10):g}",
        "early_stopping.patience=null",
    ]


def ensure_dataset(paths: StudyPaths = StudyPaths(), log: Callable[[str], None] = print) -> Path:
    """The study's scene-split dataset (64 px patches, stride 32) of train/ and opera/, made once."""
    if not (paths.dataset / "manifest.json").is_file():
        prepare_dataset(list(paths.train_inputs), paths.dataset,
                        PrepareConfig(patch_size=64, stride=32, fraction=paths.fraction), log=log)
    return paths.dataset


def train_run(run: str, *, budget_minutes: float = 8.0, full: bool = False, retrain: bool = False,
              paths: StudyPaths = StudyPaths(), extra: Sequence[str] = (), log: Callable[[str], None] = print) -> Path:
    """Train one run of the study unless it finished before; returns its output directory."""
    from sarcodec.train import load_config, train

    out = paths.run_dir(run)
    done = out / ".done"
    if done.exists() and not retrain:
        log(f"{run}: trained before ({out}); pass retrain=True to redo it")
        return out
    overrides = [f"data.root={paths.dataset}", f"output_dir={out}"]
    if not (full or paths.full):
        overrides += cpu_budget_overrides(run, budget_minutes)
    config = load_config(paths.configs / f"{run}.yaml", [*overrides, *extra])
    train(config, resume=None if retrain else "auto", overwrite=retrain, log=log)
    done.touch()
    return out


def evaluate_study(paths: StudyPaths = StudyPaths(), runs: Sequence[str] = RUNS, results: Path | None = None,
                   log: Callable[[str], None] = print) -> dict[str, Any]:
    """Evaluate the trained runs on the evaluation images (../shared/data/sar/dev); writes results.md, results.json
    and figures to ``results`` (default ``paths.results``, i.e. results/seed_study)."""
    from sarcodec.evaluate import evaluate_checkpoints

    checkpoints = [paths.run_dir(r) / "best.pth" for r in runs if (paths.run_dir(r) / "best.pth").is_file()]
    return evaluate_checkpoints(checkpoints, list(paths.eval_inputs), results or paths.results,
                                baseline_run="baseline_c16", log=log)


def rate_view(paths: StudyPaths, runs: Sequence[str], log: Callable[[str], None] = print) -> dict[str, Any]:
    """The real-bitrate view: each trained run's latents quantized and entropy coded (the latent coder), beside the
    shipped hyperprior and JPEG 2000, by the benchmark on the evaluation images (``paths.results / "rate"``)."""
    from sarcodec.bench.sweep import run_benchmark

    checkpoints = [str(paths.run_dir(r) / "best.pth") for r in runs if (paths.run_dir(r) / "best.pth").is_file()]
    return run_benchmark(list(paths.eval_inputs), paths.results / "rate", codecs=["jpeg2000"],
                         models=["hyperprior"], checkpoints=checkpoints, log=log)


def epoch_curves(paths: StudyPaths, runs: Sequence[str], baseline: str = "baseline_c16", every: int = 3) -> str:
    """The runs' validation PSNR and SSIM at equal epochs (1, then every ``every``-th, and each run's last), from
    their ``history.json``, with each run's PSNR difference to ``baseline``: a markdown table."""
    import json

    histories: dict[str, dict[int, dict[str, Any]]] = {}
    for run in runs:
        path = paths.run_dir(run) / "history.json"
        if path.is_file():
            histories[run] = {int(h["epoch"]): h for h in json.loads(path.read_text())}
    names = list(histories)
    last = max((max(h) for h in histories.values() if h), default=0)
    epochs = sorted({1, *range(every, last + 1, every), *(max(h) for h in histories.values() if h)})
    others = [r for r in names if r != baseline]
    header = ["epoch", *(f"{r} val PSNR (dB)" for r in names), *(f"{r} − {baseline} (dB)" for r in others),
              *(f"{r} val SSIM" for r in names)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for epoch in epochs:
        row = [str(epoch)]
        row += [f"{histories[r][epoch]['val_psnr']:.2f}" if epoch in histories[r] else "" for r in names]
        for r in others:
            both = epoch in histories[r] and baseline in histories and epoch in histories[baseline]
            row.append(f"{histories[r][epoch]['val_psnr'] - histories[baseline][epoch]['val_psnr']:+.2f}" if both else "")
        row += [f"{histories[r][epoch]['val_ssim']:.3f}" if epoch in histories[r] else "" for r in names]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def validation_images(paths: StudyPaths) -> list[Path]:
    """The whole images of the dataset's validation scenes (the scene split's ``val`` part)."""
    import json

    manifest = json.loads((paths.dataset / "manifest.json").read_text())
    return [Path(im["path"]) for im in manifest["images"] if im["split"] == "val"]


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m sarcodec.study", description=__doc__.splitlines()[0])
    parser.add_argument("--budget-minutes", type=float, default=8.0, help="training wall time per run (CPU budget)")
    parser.add_argument("--full", action="store_true", help="train the configs as written (seed plan; for a GPU)")
    parser.add_argument("--budget", choices=("cpu", "seed"), default="cpu",
                        help="cpu: equal wall time per run (--budget-minutes); seed: the seed plan's 20%% subset and "
                             "configs as written (30 epochs, early stopping), results in results/seed_study/seed_budget")
    parser.add_argument("--retrain", action="store_true", help="retrain runs that finished before")
    parser.add_argument("--runs", nargs="+", default=list(RUNS), choices=RUNS, help="runs to train and evaluate")
    parser.add_argument("--evaluate-only", action="store_true", help="skip training")
    args = parser.parse_args(argv)
    seed = args.budget == "seed"
    paths = seed_budget_paths() if seed else StudyPaths()
    ensure_dataset(paths)
    if not args.evaluate_only:
        for run in args.runs:
            train_run(run, budget_minutes=args.budget_minutes, full=args.full, retrain=args.retrain, paths=paths)
    evaluate_study(paths, args.runs)
    print((paths.results / "results.md").read_text())
    if seed:  # the seed budget also reports the validation scenes' whole images
        evaluate_study(replace(paths, eval_inputs=tuple(validation_images(paths))), args.runs,
                       results=paths.results / "val")
        print((paths.results / "val" / "results.md").read_text())
        rate_view(paths, args.runs)
        print((paths.results / "rate" / "report.md").read_text())
        curves = epoch_curves(paths, args.runs)  # the validation patches' PSNR at equal epochs, from the histories
        (paths.results / "val_curves.md").write_text(curves)
        print(curves)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
