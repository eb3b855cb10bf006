"""mmaction2 TimeSformer checkpoints give the logits mmaction2 computes.

mmaction2 builds its own Recognizer3D (TimeSformer backbone + TimeSformerHead) with random
weights, every parameter non-trivial; the checkpoint is written the way mmengine's Runner
writes it (meta, state_dict, message_hub, optimizer) and loaded into ours. Needs the mmaction
extra (installed in CI).
"""

import logging

import pytest
import torch
from optional_extras import require_extra

require_extra("mmaction", "mmaction")

from mmaction.registry import MODELS  # noqa: E402
from mmaction.utils import register_all_modules  # noqa: E402
from mmengine.logging import MessageHub, MMLogger  # noqa: E402
from mmengine.runner.checkpoint import save_checkpoint, weights_to_cpu  # noqa: E402

from video_ats import build_model, load_checkpoint  # noqa: E402
from video_ats.checkpoint import CheckpointError  # noqa: E402

register_all_modules()
MMLogger.get_current_instance().setLevel(logging.WARNING)

SIZE = dict(img_size=32, patch_size=8, num_frames=4, embed_dim=48, depth=3, num_heads=4)


def mmaction_recognizer(attention_type="divided_space_time", num_frames=SIZE["num_frames"], seed=0):
    model = MODELS.build(dict(
        type="Recognizer3D",
        backbone=dict(type="TimeSformer", pretrained=None, num_frames=num_frames, img_size=SIZE["img_size"],
                      patch_size=SIZE["patch_size"], embed_dims=SIZE["embed_dim"], num_heads=SIZE["num_heads"],
                      num_transformer_layers=SIZE["depth"], attention_type=attention_type,
                      norm_cfg=dict(type="LN", eps=1e-6)),
        cls_head=dict(type="TimeSformerHead", num_classes=5, in_channels=SIZE["embed_dim"]))).eval()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():      # temporal_fc (zero at init) included
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.2)
    return model


def save_like_the_runner(model, path):
    hub = MessageHub.get_instance("video_ats_checkpoint_test")
    hub.update_scalar("train/loss", 1.25)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.005, momentum=0.9)
    save_checkpoint({"meta": {"epoch": 15, "iter": 1000, "seed": 0, "experiment_name": "timesformer_tiny"},
                     "state_dict": weights_to_cpu(model.state_dict()), "message_hub": hub.state_dict(),
                     "optimizer": optimizer.state_dict()}, str(path))


def clips(frames=SIZE["num_frames"], seed=1):
    return torch.randn(2, 3, frames, SIZE["img_size"], SIZE["img_size"], generator=torch.Generator().manual_seed(seed))


def mmaction_logits(model, video):
    with torch.no_grad():
        logits, _ = model.extract_feat(video[:, None], stage="head")   # (N, views=1, C, T, H, W)
    return logits


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    model = mmaction_recognizer()
    path = tmp_path_factory.mktemp("mmaction") / "epoch_15.pth"
    save_like_the_runner(model, path)
    return model, path


@pytest.fixture
def without_safe_globals():
    """torch.load as without the mmaction2 plugin, which registers mmengine's HistoryBuffer as a
    safe global when imported (another test module may have imported it)."""
    registered = torch.serialization.get_safe_globals()
    torch.serialization.clear_safe_globals()
    yield
    torch.serialization.add_safe_globals(registered)


def test_an_mmaction2_checkpoint_gives_the_mmaction2_logits(saved, caplog, without_safe_globals):
    model, path = saved
    assert all(parameter.abs().sum() > 0 for parameter in model.parameters())
    mine = build_model("timesformer_tiny", num_classes=5, **SIZE).eval()
    with caplog.at_level("WARNING", logger="video_ats.checkpoint"):
        report = load_checkpoint(mine, path)
    assert "HistoryBuffer" in caplog.text          # the message hub needs a full unpickle: said, not hidden
    assert report.source == "mmaction2" and report.loaded == len(mine.state_dict())
    assert not report.resized and not report.ignored and not report.initialized
    with torch.no_grad():
        assert torch.allclose(mine(clips()), mmaction_logits(model, clips()), atol=1e-4, rtol=0)


def test_an_mmaction2_checkpoint_for_fewer_frames_is_resized_over_time(saved):
    _, path = saved
    mine = build_model("timesformer_tiny", num_classes=5, **dict(SIZE, num_frames=8))
    report = load_checkpoint(mine, path, source="mmaction2")
    assert report.resized == [("time_embed", (1, 4, 48), (1, 8, 48))]


def test_a_space_only_mmaction2_timesformer_is_refused_with_the_reason(tmp_path):
    path = tmp_path / "space_only.pth"
    save_like_the_runner(mmaction_recognizer("space_only"), path)
    with pytest.raises(CheckpointError, match="no temporal attention") as error:
        load_checkpoint(build_model("timesformer_tiny", num_classes=5, **SIZE), path)
    assert "backbone.transformer_layers.layers.0.norms.0.weight" in str(error.value)
