"""The mmaction2 bridge: our backbones with ATS inside mmaction2's Recognizer3D, from the example config.

Needs the mmaction extra (installed in CI).
"""

import logging
from pathlib import Path

import pytest
import torch
from optional_extras import require_extra

require_extra("mmaction", "mmaction")

from mmaction.registry import MODELS  # noqa: E402
from mmaction.structures import ActionDataSample  # noqa: E402
from mmaction.utils import register_all_modules  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.logging import MMLogger  # noqa: E402
from mmengine.optim import build_optim_wrapper  # noqa: E402
from mmengine.runner.checkpoint import save_checkpoint, weights_to_cpu  # noqa: E402

from video_ats import build_model, load_checkpoint  # noqa: E402
from video_ats.checkpoint import save_model_checkpoint  # noqa: E402

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "mmaction2" / "timesformer_tiny_ats_synthetic.py"

register_all_modules()
MMLogger.get_current_instance().setLevel(logging.WARNING)


@pytest.fixture(scope="module")
def config():
    return Config.fromfile(str(CONFIG))       # custom_imports imports video_ats.integrations.mmaction


CONFIG_CLASSES = 6      # the shipped config: the 6 classes tools/make_synthetic.py writes by default


def batch(num_clips=2, frames=8, size=64, classes=CONFIG_CLASSES, seed=0):
    """What mmaction2's PackActionInputs yields: uint8 (views, C, T, H, W) per clip, labelled samples."""
    generator = torch.Generator().manual_seed(seed)
    inputs = [torch.randint(0, 256, (1, 3, frames, size, size), dtype=torch.uint8, generator=generator)
              for _ in range(num_clips)]
    samples = [ActionDataSample().set_gt_labels(index % classes) for index in range(num_clips)]
    return {"inputs": inputs, "data_samples": samples}


def test_the_example_config_builds_a_recognizer_with_our_backbone_and_ats(config):
    from video_ats.integrations.mmaction import VideoATSTimeSformer

    model = MODELS.build(config.model)
    model.init_weights()
    assert type(model).__name__ == "Recognizer3D"
    assert isinstance(model.backbone, VideoATSTimeSformer)
    assert model.backbone.ats.blocks == (3, 4, 5) and model.backbone.ats.ratio == 0.5
    model.eval()
    with torch.no_grad():
        features = model(torch.randn(2, 1, 3, 8, 64, 64), mode="tensor")          # backbone features
        predictions = model.test_step(batch())
    assert features.shape == (2, 96)
    assert [stage["block"] for stage in model.backbone.ats_stats] == [3, 4, 5]
    assert all(int(stage["kept"].max()) <= 32 for stage in model.backbone.ats_stats)    # ratio 0.5 of 64
    assert predictions[0].pred_scores.item.shape == (CONFIG_CLASSES,)


def test_a_train_step_updates_the_backbone(config):
    torch.manual_seed(0)
    model = MODELS.build(config.model)
    model.init_weights()
    model.train()
    optim_wrapper = build_optim_wrapper(model, config.optim_wrapper)
    before = model.backbone.blocks[5].mlp.fc2.weight.detach().clone()
    losses = model.train_step(batch(), optim_wrapper)
    assert torch.isfinite(losses["loss_cls"])
    assert not torch.equal(model.backbone.blocks[5].mlp.fc2.weight.detach(), before)
    assert len(model.backbone.ats_stats) == 3


def test_pretrained_loads_any_supported_checkpoint_without_its_classifier(config, tmp_path):
    trained = build_model("timesformer_tiny", num_classes=7)
    with torch.no_grad():
        trained.time_embed.normal_()
    path = tmp_path / "timesformer_tiny_k7.pt"
    save_model_checkpoint(path, trained, model_name="timesformer_tiny")
    model_config = config.model.copy()
    model_config["backbone"] = dict(config.model.backbone, pretrained=str(path))
    model = MODELS.build(model_config)
    model.init_weights()
    assert torch.equal(model.backbone.time_embed.detach(), trained.time_embed.detach())
    assert torch.equal(model.backbone.blocks[0].attn.qkv.weight.detach(), trained.blocks[0].attn.qkv.weight.detach())


def test_a_recognizer_trained_through_the_bridge_loads_back_into_our_model(config, tmp_path):
    model = MODELS.build(config.model)
    model.init_weights()
    path = tmp_path / "epoch_1.pth"
    save_checkpoint({"meta": {"epoch": 1}, "state_dict": weights_to_cpu(model.state_dict())}, str(path))
    ours = build_model("timesformer_tiny", num_classes=CONFIG_CLASSES, ats=dict(blocks=[3, 4, 5], ratio=0.5)).eval()
    report = load_checkpoint(ours, path)
    assert report.source == "mmaction2" and report.loaded == len(ours.state_dict())
    model.eval()
    video = torch.randn(2, 3, 8, 64, 64)
    with torch.no_grad():
        logits, _ = model.extract_feat(video[:, None], stage="head")
        assert torch.allclose(logits, ours(video), atol=1e-5, rtol=0)


@pytest.mark.parametrize("options", [dict(ats=dict(ratio=0.5)), dict(depth=2, consensus="avg")],
                         ids=["vit_consensus_with_ats", "avg_consensus"])
def test_xvit_backbone_feeds_a_timesformer_head_with_the_consensus_features(options):
    from video_ats.integrations.mmaction import VideoATSXViT

    model = MODELS.build(dict(
        type="Recognizer3D",
        backbone=dict(type="VideoATSXViT", preset="xvit_tiny", **options),
        cls_head=dict(type="TimeSformerHead", num_classes=CONFIG_CLASSES, in_channels=96),
        data_preprocessor=dict(type="ActionDataPreprocessor", mean=[114.75] * 3, std=[57.375] * 3,
                               format_shape="NCTHW")))
    model.init_weights()
    # vit: the temporal head's features before its last Linear; avg: the mean frame feature.
    assert isinstance(model.backbone, VideoATSXViT) and model.backbone.feature_dim == 96
    # Backbone + mmaction2 head compute exactly our XViT, whose last Linear is cls_head.fc_cls.
    ours = build_model("xvit_tiny", num_classes=CONFIG_CLASSES, **options).eval()
    assert load_checkpoint(ours, model.state_dict()).source == "mmaction2"
    model.eval()
    video = torch.randn(2, 3, 8, 64, 64)
    with torch.no_grad():
        logits, _ = model.extract_feat(video[:, None], stage="head")
        assert torch.allclose(logits, ours(video), atol=1e-5, rtol=0)
    losses = model.train_step(batch(), build_optim_wrapper(model, dict(optimizer=dict(type="SGD", lr=0.01))))
    assert torch.isfinite(losses["loss_cls"])


def test_a_preset_of_the_other_backbone_is_refused():
    with pytest.raises(ValueError, match="unknown TimeSformer preset 'xvit_tiny'; valid presets are"):
        MODELS.build(dict(type="VideoATSTimeSformer", preset="xvit_tiny"))
