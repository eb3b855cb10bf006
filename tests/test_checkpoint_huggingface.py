"""Hugging Face TimesformerForVideoClassification checkpoints give the logits transformers computes.

transformers builds and runs its own model here (random weights, every parameter non-trivial);
its saved files are then loaded into ours. Needs the `hf` extra (installed in CI).
"""

import pytest
import torch
from optional_extras import require_extra

transformers = require_extra("transformers", "hf")

from video_ats import build_model, load_checkpoint  # noqa: E402
from video_ats.checkpoint import CheckpointError  # noqa: E402

SIZE = dict(img_size=32, patch_size=8, num_frames=4, embed_dim=48, depth=3, num_heads=4)


def hf_timesformer(num_labels=5, seed=0):
    config = transformers.TimesformerConfig(
        image_size=SIZE["img_size"], patch_size=SIZE["patch_size"], num_frames=SIZE["num_frames"],
        hidden_size=SIZE["embed_dim"], num_hidden_layers=SIZE["depth"], num_attention_heads=SIZE["num_heads"],
        intermediate_size=4 * SIZE["embed_dim"], num_labels=num_labels, attention_type="divided_space_time")
    model = transformers.TimesformerForVideoClassification(config).eval()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():      # temporal_dense, embeddings and norms included
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.2)
    return model


def clips(seed=1):
    return torch.randn(2, 3, SIZE["num_frames"], SIZE["img_size"], SIZE["img_size"],
                       generator=torch.Generator().manual_seed(seed))


def hf_logits(model, video):
    with torch.no_grad():
        return model(pixel_values=video.permute(0, 2, 1, 3, 4)).logits      # HF takes (B, T, C, H, W)


@pytest.fixture(scope="module")
def reference():
    model = hf_timesformer()
    return model, hf_logits(model, clips())


def ours(num_classes=5, **overrides):
    return build_model("timesformer_tiny", num_classes=num_classes, **dict(SIZE, **overrides)).eval()


def test_a_save_pretrained_directory_gives_the_transformers_logits(reference, tmp_path):
    model, expected = reference
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    mine = ours()
    report = load_checkpoint(mine, tmp_path)
    assert report.source == "huggingface" and report.loaded == len(mine.state_dict())
    with torch.no_grad():
        assert torch.allclose(mine(clips()), expected, atol=1e-4, rtol=0)


@pytest.mark.parametrize("file_name", ["model.safetensors", "pytorch_model.bin"])
def test_a_single_weights_file_gives_the_transformers_logits(reference, tmp_path, file_name):
    model, expected = reference
    path = tmp_path / file_name
    if file_name.endswith(".safetensors"):
        from safetensors.torch import save_file
        save_file({key: value.contiguous() for key, value in model.state_dict().items()}, str(path))
    else:
        torch.save(model.state_dict(), path)
    mine = ours()
    assert load_checkpoint(mine, path, source="huggingface").source == "huggingface"
    with torch.no_grad():
        assert torch.allclose(mine(clips()), expected, atol=1e-4, rtol=0)


def test_fine_tuning_to_another_class_count_keeps_the_backbone_features(reference):
    model, _ = reference
    mine = ours(num_classes=3)
    report = load_checkpoint(mine, model.state_dict(), drop_head=True)
    assert report.dropped_head == ["head.weight", "head.bias"]
    with torch.no_grad():
        hf_features = model.timesformer(pixel_values=clips().permute(0, 2, 1, 3, 4)).last_hidden_state[:, 0]
        assert torch.allclose(mine.forward_features(clips()), hf_features, atol=1e-4, rtol=0)


def test_a_truncated_safetensors_download_names_the_file(reference, tmp_path):
    model, _ = reference
    model.save_pretrained(tmp_path)
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="cannot read checkpoint .*model.safetensors"):
        load_checkpoint(ours(), tmp_path)


def test_a_directory_without_weights_says_what_it_expected(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(CheckpointError, match="no model.safetensors, pytorch_model.bin"):
        load_checkpoint(ours(), tmp_path)


def test_a_headless_transformers_model_loads_into_a_headless_model_as_the_error_suggests(reference, tmp_path):
    model, _ = reference
    model.timesformer.save_pretrained(tmp_path)           # TimesformerModel: no classifier
    with pytest.raises(CheckpointError, match=r"or build the model with num_classes=None"):
        load_checkpoint(ours(num_classes=400), tmp_path)
    headless = ours(num_classes=None)                     # what that hint asks for
    assert load_checkpoint(headless, tmp_path).loaded == len(headless.state_dict())
    with torch.no_grad():
        hf_features = model.timesformer(pixel_values=clips().permute(0, 2, 1, 3, 4)).last_hidden_state[:, 0]
        features = headless(clips())
    assert features.shape == (2, SIZE["embed_dim"])
    assert torch.allclose(features, hf_features, atol=1e-4, rtol=0)
