"""This toolkit's checkpoint format, bad files, source detection, heads, ImageNet ViT init, the convert tool."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from yacs.config import CfgNode

import video_ats
from video_ats import build_model, load_checkpoint
from video_ats.checkpoint import (SOURCES, CheckpointError, build_model_from_checkpoint, checkpoint_num_classes,
                                  read_checkpoint_file, save_model_checkpoint)

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "tests" / "fixtures" / "reference"
TINY = dict(img_size=32, patch_size=8, embed_dim=48, depth=2, num_heads=4)


def reference(name):
    return torch.load(REFERENCE / f"{name}.pt", weights_only=False)


def randomized(model, seed=0):
    """Every parameter non-trivial (temporal_fc and embeddings included)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.1)
    return model.eval()


def clip(frames=8, size=32, seed=1):
    return torch.randn(2, 3, frames, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.fixture
def saved(tmp_path):
    model = randomized(build_model("timesformer_tiny", num_classes=7, ats={"ratio": 0.5, "blocks": [1]}, **TINY))
    path = tmp_path / "run" / "checkpoint_epoch_3.pt"
    config = CfgNode({"SOLVER": CfgNode({"BASE_LR": 0.1})})
    save_model_checkpoint(path, model, model_name="timesformer_tiny", model_kwargs=TINY,
                          extra={"epoch": 3, "optimizer": {"state": {}, "param_groups": [{"lr": 0.1}]},
                                 "config": config})
    return model, path


# --- this toolkit's format -------------------------------------------------------------------

def test_own_format_holds_the_documented_entries_and_reads_without_unpickling_code(saved, caplog):
    _, path = saved
    with caplog.at_level("WARNING", logger="video_ats.checkpoint"):
        checkpoint = read_checkpoint_file(path)
    assert not caplog.records                     # weights_only loading sufficed
    assert checkpoint["format"] == "video_ats" and checkpoint["format_version"] == 1
    assert checkpoint["model_name"] == "timesformer_tiny" and checkpoint["num_classes"] == 7
    assert checkpoint["model_kwargs"] == TINY and checkpoint["ats"]["ratio"] == 0.5
    assert checkpoint["epoch"] == 3 and checkpoint["config"] == {"SOLVER": {"BASE_LR": 0.1}}
    assert os.listdir(path.parent) == [path.name]  # no temporary file left behind


def test_build_model_from_checkpoint_restores_architecture_ats_and_weights(saved):
    model, path = saved
    restored = build_model_from_checkpoint(path).eval()
    assert restored.ats.ratio == 0.5 and restored.num_classes == 7
    with torch.no_grad():
        assert torch.equal(restored(clip()), model(clip()))


def test_fp16_weights_load_into_an_fp32_model_as_their_fp16_rounding(tmp_path):
    model = randomized(build_model("timesformer_tiny", num_classes=7, **TINY))
    path = tmp_path / "half.pt"
    save_model_checkpoint(path, model, model_name="timesformer_tiny", model_kwargs=TINY, weights_dtype=torch.float16)
    stored = read_checkpoint_file(path)["model"]
    assert {value.dtype for value in stored.values()} == {torch.float16}
    fresh = build_model("timesformer_tiny", num_classes=7, **TINY)
    load_checkpoint(fresh, path)
    for key, value in model.state_dict().items():
        loaded = fresh.state_dict()[key]
        assert loaded.dtype == torch.float32, key
        assert torch.equal(loaded, value.half().float()), key
    # also through build_model_from_checkpoint, and into a model whose pos_embed must be resized
    assert all(p.dtype == torch.float32 for p in build_model_from_checkpoint(path).parameters())
    larger = build_model("timesformer_tiny", num_classes=7, **{**TINY, "img_size": 48})
    load_checkpoint(larger, path)
    assert larger.pos_embed.dtype == torch.float32


def test_saving_is_atomic_when_writing_fails(saved):
    model, path = saved
    before = path.read_bytes()
    with pytest.raises(Exception):
        save_model_checkpoint(path, model, extra={"unpicklable": lambda: None})
    assert path.read_bytes() == before and os.listdir(path.parent) == [path.name]


def test_extra_keys_cannot_replace_format_keys(tmp_path):
    model = build_model("timesformer_tiny", num_classes=3, **TINY)
    with pytest.raises(ValueError, match="reserved"):
        save_model_checkpoint(tmp_path / "x.pt", model, extra={"model": {}})


def test_a_newer_format_version_is_refused(saved):
    _, path = saved
    checkpoint = read_checkpoint_file(path)
    checkpoint["format_version"] = 2
    with pytest.raises(CheckpointError, match="format_version 2"):
        load_checkpoint(build_model("timesformer_tiny", num_classes=7, **TINY), checkpoint)


# --- bad files ---------------------------------------------------------------------------------

def test_a_truncated_download_says_so_and_names_the_file(saved, tmp_path):
    _, path = saved
    truncated = tmp_path / "truncated.pyth"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ValueError, match="truncated or interrupted download") as error:
        load_checkpoint(build_model("timesformer_tiny", num_classes=7, **TINY), truncated)
    assert str(truncated) in str(error.value) and "Expected a file written by torch.save" in str(error.value)


@pytest.mark.parametrize("content, what", [(os.urandom(4096), "not a PyTorch checkpoint"),
                                           (b"epoch 3, top-1 77.9\n", "not a PyTorch checkpoint"),
                                           (b"", "the file is empty")])
def test_a_corrupted_or_foreign_file_says_what_was_expected(tmp_path, content, what):
    path = tmp_path / "model.pth"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=what) as error:
        read_checkpoint_file(path)
    assert str(path) in str(error.value) and ".safetensors" in str(error.value)


def test_a_file_holding_something_else_than_a_dict_is_refused(tmp_path):
    path = tmp_path / "list.pt"
    torch.save([torch.zeros(2)], path)
    with pytest.raises(ValueError, match="holds a list, not a checkpoint"):
        read_checkpoint_file(path)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        read_checkpoint_file(tmp_path / "nowhere.pyth")


def test_keys_of_no_known_layout_list_the_expected_layouts():
    with pytest.raises(CheckpointError, match="match no known layout") as error:
        load_checkpoint(build_model("timesformer_tiny", num_classes=7, **TINY), {"conv1.weight": torch.zeros(1)})
    assert all(source in str(error.value) for source in SOURCES)


def test_a_checkpoint_without_a_state_dict_names_its_top_level_keys():
    with pytest.raises(CheckpointError, match=r"holds no state dict: its top-level keys are \['epoch', 'meta'\]"):
        load_checkpoint(build_model("timesformer_tiny", num_classes=7, **TINY), {"epoch": 1, "meta": {}})


# --- sources -----------------------------------------------------------------------------------

def test_an_unknown_source_lists_the_valid_ones():
    with pytest.raises(ValueError, match="valid sources are .*'timesformer_official'.*'timm_vit'"):
        load_checkpoint(build_model("timesformer_tiny", num_classes=7, **TINY), {}, source="pyslowfast")


def test_an_explicit_source_must_match_the_keys():
    fixture = reference("official_timesformer_tiny")
    model = build_model("timesformer_tiny", num_classes=5, num_frames=4, **dict(TINY, depth=4))
    with pytest.raises(CheckpointError, match="its keys look like timesformer_official"):
        load_checkpoint(model, fixture["checkpoint"], source="mmaction2")


def test_a_data_parallel_prefix_is_removed():
    model = randomized(build_model("timesformer_tiny", num_classes=7, **TINY))
    state = {f"module.{key}": value for key, value in model.state_dict().items()}
    other = build_model("timesformer_tiny", num_classes=7, **TINY).eval()
    assert load_checkpoint(other, state).source == "video_ats"
    with torch.no_grad():
        assert torch.equal(other(clip()), model(clip()))


def test_checkpoint_num_classes_reads_the_classifier():
    assert checkpoint_num_classes(reference("official_xvit_tiny")["checkpoint"]) == 5
    assert checkpoint_num_classes(reference("official_timesformer_tiny")["checkpoint"]) == 5


# --- the classifier ----------------------------------------------------------------------------

def test_another_class_count_is_an_error_unless_the_head_is_dropped(caplog):
    fixture = reference("official_timesformer_tiny")
    model = build_model("timesformer_tiny", num_classes=3, num_frames=4, **dict(TINY, depth=4))
    with pytest.raises(CheckpointError, match="5-class classifier .* 3-class classifier; pass drop_head=True"):
        load_checkpoint(model, fixture["checkpoint"])
    head_before = model.head.weight.detach().clone()
    with caplog.at_level("INFO", logger="video_ats.checkpoint"):
        report = load_checkpoint(model, fixture["checkpoint"], drop_head=True)
    assert report.dropped_head == ["head.weight", "head.bias"]
    assert set(report.initialized) == {"head.weight", "head.bias"}
    assert torch.equal(model.head.weight.detach(), head_before)
    assert torch.equal(model.cls_token.detach(), fixture["checkpoint"]["model_state"]["model.cls_token"])
    assert "dropped the checkpoint's classifier (5 classes)" in caplog.text


def test_a_failed_load_leaves_the_model_unchanged():
    fixture = reference("official_timesformer_tiny")
    model = build_model("timesformer_tiny", num_classes=3, num_frames=4, **dict(TINY, depth=4))
    before = {key: value.clone() for key, value in model.state_dict().items()}
    with pytest.raises(CheckpointError):
        load_checkpoint(model, fixture["checkpoint"])
    assert all(torch.equal(before[key], value) for key, value in model.state_dict().items())


# --- ImageNet ViT (timm layout) ------------------------------------------------------------------

def image_vit_state(dim=48, depth=2, tokens=17, classes=1000, seed=3):
    """A timm ViT state dict (vit_base_patch16_224 names) at a tiny size, random values."""
    generator = torch.Generator().manual_seed(seed)
    shapes = {"cls_token": (1, 1, dim), "pos_embed": (1, tokens, dim), "patch_embed.proj.weight": (dim, 3, 8, 8),
              "patch_embed.proj.bias": (dim,), "norm.weight": (dim,), "norm.bias": (dim,),
              "pre_logits.fc.weight": (dim, dim), "pre_logits.fc.bias": (dim,),
              "head.weight": (classes, dim), "head.bias": (classes,)}
    for i in range(depth):
        shapes.update({f"blocks.{i}.norm1.weight": (dim,), f"blocks.{i}.norm1.bias": (dim,),
                       f"blocks.{i}.attn.qkv.weight": (3 * dim, dim), f"blocks.{i}.attn.qkv.bias": (3 * dim,),
                       f"blocks.{i}.attn.proj.weight": (dim, dim), f"blocks.{i}.attn.proj.bias": (dim,),
                       f"blocks.{i}.norm2.weight": (dim,), f"blocks.{i}.norm2.bias": (dim,),
                       f"blocks.{i}.mlp.fc1.weight": (4 * dim, dim), f"blocks.{i}.mlp.fc1.bias": (4 * dim,),
                       f"blocks.{i}.mlp.fc2.weight": (dim, 4 * dim), f"blocks.{i}.mlp.fc2.bias": (dim,)})
    return {key: torch.randn(shape, generator=generator) * 0.1 for key, shape in shapes.items()}


def test_imagenet_vit_initialises_timesformer_as_the_official_code_does():
    image = image_vit_state()
    model = build_model("timesformer_tiny", num_classes=7, num_frames=4, **TINY).eval()
    head_before = model.head.weight.detach().clone()
    report = load_checkpoint(model, {"model": image})              # DeiT-style wrapper
    assert report.source == "timm_vit"
    assert set(report.ignored) == {"head.weight", "head.bias", "pre_logits.fc.weight", "pre_logits.fc.bias"}
    for i in range(2):
        block = model.blocks[i]
        assert torch.equal(block.temporal_attn.qkv.weight.detach(), image[f"blocks.{i}.attn.qkv.weight"])
        assert torch.equal(block.temporal_norm1.bias.detach(), image[f"blocks.{i}.norm1.bias"])
        assert not block.temporal_fc.weight.any() and not block.temporal_fc.bias.any()
        assert report.initialized[f"blocks.{i}.temporal_fc.weight"] == "zeros"
    assert not model.time_embed.any() and report.initialized["time_embed"] == "zeros"
    assert torch.equal(model.head.weight.detach(), head_before)
    assert len(report.copied) == 2 * 6                            # attn qkv/proj + norm1, weight and bias
    # Each block starts as the image block: a clip of identical frames gives the features of one frame.
    single = build_model("timesformer_tiny", num_classes=7, num_frames=1, **TINY).eval()
    load_checkpoint(single, image)
    frame = torch.randn(1, 3, 1, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model.forward_features(frame.expand(-1, -1, 4, -1, -1)),
                              single.forward_features(frame), atol=1e-5)


def test_imagenet_vit_initialises_xvit_backbone_and_reports_the_fresh_head():
    image = image_vit_state(tokens=37)                             # a 48-px ViT: the grid is resized
    model = build_model("xvit_tiny", num_classes=7, **TINY)
    report = load_checkpoint(model, image, source="timm_vit")
    assert report.resized == [("pos_embed", (1, 37, 48), (1, 17, 48))]
    assert torch.equal(model.blocks[1].mlp.fc2.weight.detach(), image["blocks.1.mlp.fc2.weight"])
    assert not model.temp_embed.any() and report.initialized["temp_embed"] == "zeros"
    assert all(report.initialized[key] == "the model's own initialisation"
               for key in model.state_dict() if key.startswith("consensus."))


# --- the convert tool and the package boundary ------------------------------------------------------

def test_convert_tool_round_trip_gives_identical_logits(tmp_path):
    fixture = reference("official_xvit_tiny")
    config = fixture["config"]
    official = tmp_path / "xvit.pth"
    torch.save(fixture["checkpoint"], official)
    converted = tmp_path / "converted" / "xvit_tiny.pt"
    overrides = [f"img_size={config['img_size']}", f"patch_size={config['patch_size']}",
                 f"num_segments={config['num_segments']}", f"embed_dim={config['embed_dim']}",
                 f"depth={config['depth']}", f"num_heads={config['num_heads']}",
                 f"head_mlp_dim={config['head_mlp_dim']}", f"temp_embed_frames={config['vit_num_frames']}",
                 "ats={'ratio': 1.0, 'sampler': 'topk', 'blocks': [1, 2, 3]}"]
    run = subprocess.run([sys.executable, str(ROOT / "tools" / "convert_checkpoint.py"), "--input", str(official),
                          "--output", str(converted), "--model", "xvit_tiny", *overrides],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "source: xvit_official" in run.stdout and "new_fc.weight" in run.stdout
    assert "resized: pos_embed" in run.stdout and "temp_embed" not in run.stdout
    model = build_model_from_checkpoint(converted).eval()
    assert model.ats is not None and read_checkpoint_file(converted)["converted_from"]["source"] == "xvit_official"
    with torch.no_grad():
        logits = model(fixture["input"])
    assert torch.allclose(logits, fixture["logits"], atol=1e-5, rtol=0)
    direct = build_model("xvit_tiny", num_classes=5, ats={"ratio": 1.0, "sampler": "topk", "blocks": [1, 2, 3]},
                         img_size=32, patch_size=8, num_segments=4, embed_dim=48, depth=4, num_heads=4,
                         head_mlp_dim=48, temp_embed_frames=8).eval()
    load_checkpoint(direct, official)
    with torch.no_grad():
        assert torch.equal(direct(fixture["input"]), logits)


def test_convert_tool_reports_errors_without_a_traceback(tmp_path, capsys):
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import convert_checkpoint as tool
    finally:
        sys.path.pop(0)
    from video_ats.cli import run_tool

    bad = tmp_path / "bad.pyth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(SystemExit) as exit_info:     # the tools' convention: a user error exits with 2
        run_tool(tool.main, ["--input", str(bad), "--output", str(tmp_path / "out.pt"), "--model", "timesformer_tiny"])
    assert exit_info.value.code == 2
    assert "cannot read checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "out.pt").exists()


def test_importing_the_package_imports_no_optional_ecosystem():
    code = ("import sys, video_ats; bad = [m for m in ('mmaction', 'mmengine', 'mmcv', 'transformers', "
            "'safetensors') if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert video_ats.load_checkpoint is load_checkpoint
