"""XViT's space-time mixing: the shift pattern and the segment grouping."""

import torch

from video_ats import build_model
from video_ats.models.xvit import temporal_shift


def frame_indexed(frames, heads=4, tokens=3, head_dim=6):
    """(1, T, h, N, d_h) where every entry of frame t equals t + 1."""
    values = torch.arange(1, frames + 1, dtype=torch.float32)
    return values[None, :, None, None, None].expand(1, frames, heads, tokens, head_dim).clone()


def channel_values(shifted, frame):
    """The frame's values over the concatenated channels (h * d_h), at token 0."""
    return shifted[0, frame, :, 0, :].reshape(-1)


def test_shift_takes_fold_channels_from_each_neighbour():
    x = frame_indexed(4)                                  # 24 channels, fold = 24 / 8 = 3
    shifted = temporal_shift(x, num_segments=4, fold=3)
    # Frame 1 (value 2): channels 0-2 from frame 2 (value 3), 3-5 from frame 0 (value 1), rest own.
    assert channel_values(shifted, 1).tolist() == [3] * 3 + [1] * 3 + [2] * 18


def test_shift_fills_zeros_at_the_clip_edges():
    shifted = temporal_shift(frame_indexed(4), num_segments=4, fold=3)
    assert channel_values(shifted, 0).tolist() == [2] * 3 + [0] * 3 + [1] * 18
    assert channel_values(shifted, 3).tolist() == [0] * 3 + [3] * 3 + [4] * 18


def test_shift_does_not_cross_segment_boundaries():
    shifted = temporal_shift(frame_indexed(8), num_segments=4, fold=3)
    # Frame 3 ends the first segment, frame 4 starts the second.
    assert channel_values(shifted, 3).tolist() == [0] * 3 + [3] * 3 + [4] * 18
    assert channel_values(shifted, 4).tolist() == [6] * 3 + [0] * 3 + [5] * 18


def test_heads_are_concatenated_before_the_shift():
    # fold = 6 = one whole head of width 6: head 0 comes from t+1, head 1 from t-1.
    shifted = temporal_shift(frame_indexed(3), num_segments=3, fold=6)
    assert shifted[0, 1, 0].unique().tolist() == [3.0]
    assert shifted[0, 1, 1].unique().tolist() == [1.0]
    assert shifted[0, 1, 2:].unique().tolist() == [2.0]


def test_sixteen_frames_in_segments_of_eight_are_two_independent_groups():
    model = build_model("xvit_tiny", num_classes=3, num_frames=16, num_segments=8).eval()
    video = torch.randn(1, 3, 16, 64, 64)
    changed = video.clone()
    changed[:, :, 7] += 1.0                               # last frame of the first group
    with torch.no_grad():
        before, after = model.forward_features(video), model.forward_features(changed)
    moved = (before - after).abs().amax(dim=-1)[0]        # (T,)
    assert (moved[:8] > 0).all(), "mixing spreads the change through the first group"
    assert (moved[8:] == 0).all(), "the second group never sees the first"


def test_the_in_place_shift_of_the_qkv_projection_equals_the_shift_of_k_and_v():
    from video_ats.models.xvit import shift_keys_values_

    heads, head_dim, frames, segments, fold = 4, 6, 16, 8, 3
    qkv = torch.randn(2, frames, 5, 3 * heads * head_dim)
    q, k, v = (t.unflatten(-1, (heads, head_dim)).transpose(2, 3) for t in qkv.chunk(3, dim=-1))
    expected_k, expected_v = (temporal_shift(t, segments, fold) for t in (k, v))
    shifted = shift_keys_values_(qkv.clone(), segments, fold)
    q2, k2, v2 = (t.unflatten(-1, (heads, head_dim)).transpose(2, 3) for t in shifted.chunk(3, dim=-1))
    assert torch.equal(q2, q) and torch.equal(k2, expected_k) and torch.equal(v2, expected_v)
