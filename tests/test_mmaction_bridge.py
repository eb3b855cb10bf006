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


# --- mmaction2's own tools on the pinned stack: checkpoints, any-format load_from, FLOPs, data. -


def test_mmengine_checkpoints_load_with_torch_weights_only(tmp_path):
    import numpy as np
    from mmengine.logging import HistoryBuffer, MessageHub

    import video_ats.integrations.mmaction  # noqa: F401 - registers the safe globals

    hub = MessageHub("weights_only_test")
    for loss in (1.5, 1.25):
        hub.update_scalar("train/loss", np.float64(loss))
    path = tmp_path / "epoch_1.pth"
    save_checkpoint({"meta": {"epoch": 1, "best_score": np.float64(0.5)}, "message_hub": hub.state_dict(),
                     "state_dict": {"w": torch.zeros(2)}}, str(path))
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)     # torch >= 2.6's default
    history = checkpoint["message_hub"]["log_scalars"]["train/loss"]
    assert isinstance(history, HistoryBuffer) and history.mean() == pytest.approx(1.375)
    assert checkpoint["meta"]["best_score"] == 0.5


class _Reduce:
    """Pickles as ``getattr(HistoryBuffer, name)``, the call mmengine checkpoints make."""

    def __init__(self, name):
        self.name = name

    def __reduce__(self):
        from mmengine.logging import HistoryBuffer

        return getattr, (HistoryBuffer, self.name)


def test_the_getattr_allowed_for_mmengine_checkpoints_reaches_only_history_buffer_methods(tmp_path):
    import pickle

    from mmengine.logging import HistoryBuffer

    import video_ats.integrations.mmaction  # noqa: F401

    torch.save({"method": _Reduce("mean")}, tmp_path / "method.pth")
    assert torch.load(tmp_path / "method.pth", weights_only=True)["method"] is HistoryBuffer.mean
    torch.save({"method": _Reduce("__subclasses__")}, tmp_path / "other.pth")
    with pytest.raises(pickle.UnpicklingError, match=r"refusing getattr\(.*HistoryBuffer.*'__subclasses__'\)"):
        torch.load(tmp_path / "other.pth", weights_only=True)


@pytest.fixture(scope="module")
def runner(config, tmp_path_factory):
    """mmengine's Runner for the example config, as mmaction2's test.py builds it."""
    from mmengine.runner import Runner

    cfg = config.copy()
    cfg.work_dir = str(tmp_path_factory.mktemp("runner"))
    return Runner.from_cfg(cfg)


def official_layout(model):
    """A facebookresearch/TimeSformer .pyth of ``model``: PySlowFast's keys, ``model.`` prefix."""
    return {"model_state": {f"model.{key}": value for key, value in model.state_dict().items()}, "epoch": 15}


def recognizer_logits(runner, video):
    model = runner.model.eval()
    with torch.no_grad():
        logits, _ = model.extract_feat(video[:, None], stage="head")
    return logits


def test_load_from_takes_an_official_timesformer_checkpoint_with_its_classifier(runner, tmp_path):
    torch.manual_seed(0)
    official = build_model("timesformer_tiny", num_classes=CONFIG_CLASSES)
    with torch.no_grad():
        for parameter in official.parameters():                # nothing trivially zero
            parameter.normal_(0, 0.2)
    torch.save(official_layout(official), tmp_path / "TimeSformer_tiny.pyth")
    runner.load_checkpoint(str(tmp_path / "TimeSformer_tiny.pyth"))      # what test.py's checkpoint does
    ours = build_model("timesformer_tiny", num_classes=CONFIG_CLASSES, ats=dict(blocks=[3, 4, 5], ratio=0.5)).eval()
    assert load_checkpoint(ours, tmp_path / "TimeSformer_tiny.pyth").source == "timesformer_official"
    video = torch.randn(2, 3, 8, 64, 64)
    with torch.no_grad():
        assert torch.equal(recognizer_logits(runner, video), ours(video))


def test_load_from_takes_a_hugging_face_model_directory(runner, tmp_path):
    transformers = require_extra("transformers", "hf")
    config = transformers.TimesformerConfig(image_size=64, patch_size=8, num_frames=8, hidden_size=96,
                                            num_hidden_layers=6, num_attention_heads=4, intermediate_size=384,
                                            num_labels=CONFIG_CLASSES, attention_type="divided_space_time")
    torch.manual_seed(1)
    hf = transformers.TimesformerForVideoClassification(config).eval()
    hf.save_pretrained(tmp_path / "hf")
    runner.load_checkpoint(str(tmp_path / "hf"))
    video = torch.randn(2, 3, 8, 64, 64)
    ours = build_model("timesformer_tiny", num_classes=CONFIG_CLASSES).eval()
    load_checkpoint(ours, tmp_path / "hf")
    with torch.no_grad():
        hf_logits = hf(pixel_values=video.permute(0, 2, 1, 3, 4)).logits
    # ATS keeps every position of an 8x8 grid only at ratio 1: compare the ATS recognizer with ours + ATS.
    ours.ats = runner.model.backbone.ats
    with torch.no_grad():
        assert torch.equal(recognizer_logits(runner, video), ours(video))
        ours.ats = None
        assert torch.allclose(ours(video), hf_logits, atol=1e-4, rtol=0)


def test_load_from_with_a_checkpoint_of_another_architecture_is_a_clear_error(runner, tmp_path):
    from video_ats.checkpoint import CheckpointError

    torch.save(official_layout(build_model("timesformer_tiny", num_classes=CONFIG_CLASSES, depth=4)),
               tmp_path / "shallow.pyth")
    with pytest.raises(CheckpointError, match=r"the checkpoint has 4 blocks, the model 6"):
        runner.load_checkpoint(str(tmp_path / "shallow.pyth"))


def test_mmengine_flop_counter_counts_the_attention():
    from mmengine.analysis import get_model_complexity_info

    import video_ats.integrations.mmaction  # noqa: F401 - adds the attention handle
    from video_ats.flops import fvcore_gflops

    model = build_model("timesformer_tiny", num_classes=None).eval()
    video = torch.randn(1, 3, 8, 64, 64)
    counted = get_model_complexity_info(model, inputs=(video,), show_table=False, show_arch=False)["flops"]
    # mmengine counts LayerNorm (5 per element) as fvcore does.
    assert counted / 1e9 == pytest.approx(fvcore_gflops(model, video, include_norms=True), rel=1e-12)
    # The attention it skipped: per block, the temporal q k^T and A v over 64 positions x 8 frames
    # (64 * 8 * 8 * 96 * 2) and the spatial ones over 8 frames x 65 tokens (8 * 65 * 65 * 96 * 2).
    from mmengine.analysis import complexity_analysis

    handles = complexity_analysis._DEFAULT_SUPPORTED_FLOP_OPS
    sdpa = handles.pop("aten::scaled_dot_product_attention")
    try:
        without = get_model_complexity_info(model, inputs=(video,), show_table=False, show_arch=False)["flops"]
    finally:
        handles["aten::scaled_dot_product_attention"] = sdpa
    assert counted - without == 6 * (64 * 8 * 8 * 96 * 2 + 8 * 65 * 65 * 96 * 2)


def test_the_dataset_of_the_bridge_validates_annotations_as_ours_does(tmp_path):
    from mmaction.registry import DATASETS

    from video_ats.data import AnnotationError

    listing = tmp_path / "train_list.txt"
    listing.write_text("a.mp4 0\nb.mp4 6\n")
    with pytest.raises(AnnotationError, match=r"train_list\.txt:2: 1 row has a label outside the model's 6 "
                                              r"classes"):
        DATASETS.build(dict(type="VideoATSDataset", ann_file=str(listing), pipeline=[], num_classes=6))
    csv = tmp_path / "val.csv"
    csv.write_bytes(b"\xef\xbb\xbflabel,youtube_id,time_start,time_end\nspin,a,1,3\ngrow,b,1,3\n")
    dataset = DATASETS.build(dict(type="VideoATSDataset", ann_file=str(csv), pipeline=[], num_classes=6,
                                  data_prefix=dict(video=str(tmp_path))))
    assert [dataset.get_data_info(index)["label"] for index in range(len(dataset))] == [1, 0]
    assert dataset.metainfo["classes"] == ("grow", "spin")


def test_the_kinetics_test_config_takes_the_released_timesformer_layout_as_is():
    # The released TimeSformer_divST_8x32_224_K400.pyth, as key names and shapes measured on the
    # official code (tests/fixtures/keys), on the meta device: every recognizer key is filled.
    import json

    from video_ats.integrations.mmaction import recognizer_state_dict

    config = Config.fromfile(str(CONFIG.parent / "timesformer_base_ats_k400_test.py"))
    with torch.device("meta"):
        recognizer = MODELS.build(config.model)
    keys = Path(__file__).parent / "fixtures" / "keys" / "timesformer_divst_8x224_k400.json"
    listing = json.loads(keys.read_text())
    released = {"model_state": {key: torch.empty(shape, device="meta") for key, shape in listing["keys"]}}
    state = recognizer_state_dict(recognizer, released)
    wanted = recognizer.state_dict()
    assert set(state) == set(wanted) and len(wanted) == 249
    assert all(state[key].shape == wanted[key].shape for key in wanted)
    assert state["cls_head.fc_cls.weight"].shape == (400, 768)
    assert recognizer.backbone.ats.blocks == (3, 4, 5) and recognizer.backbone.ats.ratio == 0.75
    assert config.test_dataloader.dataset.class_list == "kinetics400"
