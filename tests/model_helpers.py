"""Small models and inputs shared by the model tests (imported, not a conftest)."""

import torch

from video_ats import build_model

BACKBONES = ("timesformer_tiny", "xvit_tiny")


def tiny_model(name, ats=None, seed=0, sharpness=10.0, num_classes=5, **overrides):
    """A tiny backbone in eval mode whose weights make attention content-dependent.

    Random init gives near-uniform attention (every clip keeps the same count); scaling the
    q and k projections sharpens the CLS rows, and non-zero temporal_fc weights make the
    temporal attention matter.
    """
    torch.manual_seed(seed)
    model = build_model(name, num_classes=num_classes, ats=ats, **overrides)
    with torch.no_grad():
        for block in model.blocks:
            dim = block.attn.qkv.weight.shape[1]
            block.attn.qkv.weight[: 2 * dim] *= sharpness
            if hasattr(block, "temporal_fc"):
                torch.nn.init.normal_(block.temporal_fc.weight, std=0.05)
                torch.nn.init.normal_(block.temporal_fc.bias, std=0.05)
    return model.eval()


def with_ats(model, name, ats, **overrides):
    """The same weights in a model built with other ATS options."""
    other = build_model(name, num_classes=model.num_classes, ats=ats, **overrides)
    other.load_state_dict(model.state_dict())
    return other.eval()


def varied_clips(frames=8, size=64):
    """Four clips of very different content: noise, a square on black, a ramp, stripes."""
    generator = torch.Generator().manual_seed(0)
    noise = torch.randn(1, 3, frames, size, size, generator=generator)
    square = torch.zeros(1, 3, frames, size, size)
    square[..., size // 3: size // 3 + size // 4, size // 3: size // 3 + size // 4] = 3.0
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    ramp = (yy + xx).expand(1, 3, frames, size, size).clone()
    stripes = torch.zeros(1, 3, frames, size, size)
    stripes[..., ::8, :] = 2.0
    stripes = stripes + 0.1 * torch.randn(stripes.shape, generator=generator)
    return torch.cat([noise, square, ramp, stripes])
