"""The synthesis of a 1088^2 tile for other transform widths, 0.8.2's ConvTranspose graph against 0.8.3's phases
(random weights of each shape: the time depends on the shapes only; one thread, best of 4).

    python results/codec/polyphase/shapes.py

The widths are the codec-v2 candidates of `results/codec/gpu_candidates/` (96-channel transforms: `hyperprior_wide`;
128 / 64: `hyperprior_large`) and the light network of `results/codec/light_networks/` (32 / 32).
"""

from __future__ import annotations

import numpy as np
from polyphase import best, convtranspose_nodes, session, shipped_conv_nodes

from sarcodec.codec import lite


def synthesis_state(channels: int, latents: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    state = {"synthesis.0.weight": rng.normal(0, 0.05, (channels, latents, 3, 3)),
             "synthesis.0.bias": rng.normal(0, 0.1, channels),
             "synthesis.2.weight": rng.normal(0, 0.05, (channels, channels, 5, 5)),
             "synthesis.2.bias": rng.normal(0, 0.1, channels),
             "synthesis.4.weight": rng.normal(0, 0.05, (channels, 1, 5, 5)), "synthesis.4.bias": rng.normal(0, 0.1, 1)}
    for layer in (1, 3):
        state[f"synthesis.{layer}.beta"] = np.ones(channels)
        state[f"synthesis.{layer}.gamma"] = 0.1 * np.eye(channels)
    return {k: v.astype(np.float32) for k, v in state.items()}


def main() -> None:
    for channels, latents in [(64, 48), (96, 48), (128, 64), (32, 32)]:
        state = synthesis_state(channels, latents)
        new = session(lite._synthesis_graph(state))
        lite._conv_nodes = convtranspose_nodes
        try:
            old = session(lite._transform_graph(state, lite._SYNTHESIS, "synthesis"))
        finally:
            lite._conv_nodes = shipped_conv_nodes
        y = np.random.default_rng(1).normal(0, 1.5, (1, latents, 272, 272)).astype(np.float32).round()
        t_old = best(lambda: lite._in_strips(old, y, 1, 4), 4)
        t_new = best(lambda: lite._in_strips(new, y, 1, 4), 4)
        print(f"transforms {channels:3d} / latents {latents}: 0.8.2 {t_old:.3f} s, 0.8.3 {t_new:.3f} s "
              f"({t_old / t_new:.2f}x)")


if __name__ == "__main__":
    main()
