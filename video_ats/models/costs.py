"""Multiply-adds of the building blocks, as pure functions of layer sizes and token counts.

Each backbone writes its per-block cost with these (`TimeSformer.block_macs`,
`XViT.block_macs`); `video_ats.flops` adds the blocks up. The convention is fvcore's and the
published numbers': one multiply-add is one FLOP; LayerNorm, softmax, GELU and additions are
not counted. ``tokens`` may be a number or a float64 tensor of per-clip counts (B,).
"""

from __future__ import annotations

from torch import nn


def linear_macs(layer: nn.Linear, tokens):
    """A Linear applied to ``tokens`` rows: tokens x in_features x out_features."""
    return tokens * layer.in_features * layer.out_features


def mlp_macs(mlp: nn.Module, tokens):
    """fc1 and fc2 of an `Mlp` applied to ``tokens`` rows."""
    return linear_macs(mlp.fc1, tokens) + linear_macs(mlp.fc2, tokens)


def attention_matmul_macs(sequences, queries, keys, dim: int):
    """q k^T and A v of ``sequences`` attentions of ``queries`` x ``keys`` over width ``dim``
    (all heads together): sequences x queries x keys x 2 dim."""
    return sequences * queries * keys * 2 * dim
