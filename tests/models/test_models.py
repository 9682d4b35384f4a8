"""Contracts every registered autoencoder keeps: shapes, ranges, parameter counts, factory and rebuild.

Models are built at base_channels=8 for speed, except where a test is about the issue's default sizes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable

import pytest
import torch

from sarcodec.errors import BadInputError, IncompatibleModelError
from sarcodec.models import (
    AttentionAutoencoder,
    AutoencoderBase,
    ResidualAutoencoder,
    ResNetAutoencoder,
    SARAutoencoder,
    create_model,
    list_models,
)

EXPECTED_CLASSES = {
    "attention": AttentionAutoencoder,
    "baseline": SARAutoencoder,
    "residual": ResidualAutoencoder,
    "resnet_lite": ResNetAutoencoder,
}
NAMES = list_models()


def small(name: str, latent_channels: int = 16) -> AutoencoderBase:
    torch.manual_seed(0)
    return create_model(name, latent_channels=latent_channels, base_channels=8)


def test_registry_holds_the_four_seed_variants() -> None:
    assert NAMES == sorted(EXPECTED_CLASSES)
    for name, cls in EXPECTED_CLASSES.items():
        model = small(name)
        assert type(model) is cls
        assert model.model_name == name


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape", [(1, 1, 37, 53), (2, 1, 64, 64), (1, 1, 1, 1)])
def test_forward_returns_input_shape_in_unit_range(name: str, shape: tuple[int, int, int, int]) -> None:
    model = small(name).eval()
    x = torch.rand(shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        x_hat = model(x)
    assert x_hat.shape == x.shape
    assert x_hat.dtype == x.dtype
    assert torch.isfinite(x_hat).all()
    assert x_hat.min() >= 0.0 and x_hat.max() <= 1.0


@pytest.mark.parametrize("name", NAMES)
def test_encode_pads_and_decode_returns_padded_size(name: str) -> None:
    model = small(name).eval()
    x = torch.rand(1, 1, 37, 53, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        latent = model.encode(x)
        decoded = model.decode(latent)
        x_hat = model(x)
    assert latent.shape == (1, 16, math.ceil(37 / 16), math.ceil(53 / 16))
    assert latent.shape[1:] == model.latent_shape(37, 53)
    assert decoded.shape == (1, 1, 48, 64)
    # forward is exactly encode -> decode -> crop, and nothing random happens in eval mode.
    torch.testing.assert_close(decoded[..., :37, :53], x_hat)
    with torch.no_grad():
        torch.testing.assert_close(model(x), x_hat, rtol=0, atol=0)


@pytest.mark.parametrize("name", NAMES)
def test_count_parameters(name: str) -> None:
    model = small(name)
    counts = model.count_parameters()
    assert set(counts) == {"total", "encoder", "decoder", "trainable"}
    assert counts["total"] == counts["encoder"] + counts["decoder"]
    assert counts["trainable"] == counts["total"]
    for p in model.encoder.parameters():
        p.requires_grad_(False)
    assert model.count_parameters()["trainable"] == counts["decoder"]


@pytest.mark.parametrize("name", NAMES)
def test_latent_ratio_and_downsampling_factor(name: str) -> None:
    assert small(name, latent_channels=16).latent_ratio == 16.0
    model = small(name, latent_channels=4)
    assert model.latent_ratio == 64.0
    assert model.downsampling_factor == 16


@pytest.mark.parametrize(
    ("cls", "kwargs", "issue_count", "exact_count"),
    [
        # Exact counts pin the layer layout: changing them breaks existing checkpoints.
        (SARAutoencoder, {"latent_channels": 16, "base_channels": 64}, 2.3e6, 2_258_705),
        (ResNetAutoencoder, {"latent_channels": 16, "base_channels": 32}, 5.6e6, 5_665_873),
    ],
)
def test_parameter_counts_match_the_seed_study(
    cls: Callable[..., AutoencoderBase], kwargs: dict[str, int], issue_count: float, exact_count: int
) -> None:
    total = cls(**kwargs).count_parameters()["total"]
    assert abs(total - issue_count) / issue_count < 0.10
    assert total == exact_count


def test_seed_constructor_call_works() -> None:
    # The seed plan builds Variant B exactly like this before loading its checkpoint.
    model = ResidualAutoencoder(latent_channels=16, base_channels=64)
    assert model.count_parameters()["total"] == 14_748_113


def test_unknown_name_raises_one_line_error_listing_valid_names() -> None:
    with pytest.raises(IncompatibleModelError) as info:
        create_model("resnet50")
    message = str(info.value)
    assert "\n" not in message
    assert "resnet50" in message
    for name in NAMES:
        assert name in message


def test_unknown_config_key_raises_incompatible_model_error() -> None:
    with pytest.raises(IncompatibleModelError, match="reduction"):
        create_model("baseline", latent_channels=16, reduction=16)


@pytest.mark.parametrize("name", NAMES)
def test_rebuild_from_name_and_config(name: str) -> None:
    model = small(name, latent_channels=4).eval()
    config = model.config
    json.dumps(config)  # plain values: safe for weights_only checkpoints and .sarc headers
    assert config["latent_channels"] == 4 and config["base_channels"] == 8
    rebuilt = create_model(model.model_name, **config).eval()
    state = model.state_dict()
    assert list(rebuilt.state_dict()) == list(state)
    rebuilt.load_state_dict(state)
    x = torch.rand(1, 1, 20, 24, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), model(x))


@pytest.mark.parametrize("name", NAMES)
def test_gradients_reach_every_parameter(name: str) -> None:
    model = small(name).train()
    x = torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(4))
    loss = torch.nn.functional.mse_loss(model(x), x)
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss, [p for _, p in named], allow_unused=True)
    for (param_name, _), grad in zip(named, grads, strict=True):
        assert grad is not None, f"no gradient reaches {param_name}"
        assert torch.isfinite(grad).all(), param_name


def test_bad_inputs_raise_bad_input_error() -> None:
    model = small("baseline").eval()
    with pytest.raises(BadInputError):
        model(torch.rand(1, 32, 32))
    with pytest.raises(BadInputError):
        model(torch.rand(1, 2, 32, 32))
    with pytest.raises(BadInputError):
        model(torch.zeros(1, 1, 32, 32, dtype=torch.uint8))
    with pytest.raises(BadInputError):
        model.decode(torch.rand(1, 3, 2, 2))
    with pytest.raises(BadInputError):
        create_model("residual", latent_channels=0, base_channels=8)
