"""build_model(num_classes=None): a headless model whose forward returns what its classifier takes."""

import pytest
import torch

from video_ats import build_model, load_checkpoint


@pytest.mark.parametrize("name, options, classifier", [
    ("timesformer_tiny", {}, "head"),
    ("xvit_tiny", {"depth": 2}, "consensus.mlp_head.4"),                     # the temporal-attention head
    ("xvit_tiny", {"depth": 2, "consensus": "avg"}, "consensus.fc"),
])
def test_a_headless_model_returns_the_features_its_classifier_takes(name, options, classifier):
    torch.manual_seed(0)
    full = build_model(name, num_classes=5, **options).eval()
    headless = build_model(name, num_classes=None, **options).eval()
    assert headless.num_classes == 0
    weights = {key: value for key, value in full.state_dict().items() if not key.startswith(classifier + ".")}
    assert set(weights) == set(headless.state_dict())
    load_checkpoint(headless, weights, source="video_ats")
    video = torch.randn(2, 3, 8, 64, 64)
    with torch.no_grad():
        features = headless(video)
        assert features.shape == (2, 96)
        assert torch.allclose(full.get_submodule(classifier)(features), full(video), atol=1e-5, rtol=0)
