"""tools/profile_forward.py: where a forward's time goes, grouped, for the docs' profile table."""

import json

import pytest

from experiments.bench_report import profile_table
from experiments.forward_profile import group_of, group_shares
from tool_helpers import load_tool


def test_ops_fall_into_gemm_attention_and_other():
    assert group_of("aten::addmm") == group_of("aten::addmm_") == group_of("mkldnn::_linear_pointwise") == "gemm"
    assert group_of("mkldnn::_linear_pointwise.binary") == "gemm"
    assert group_of("aten::_scaled_dot_product_flash_attention_for_cpu") == "attention"
    assert group_of("aten::native_layer_norm") == group_of("aten::index_select") == "other"
    shares = group_shares({"aten::addmm": 6.0, "aten::_scaled_dot_product_flash_attention_for_cpu": 3.0,
                           "aten::add": 1.0})
    assert shares == pytest.approx({"gemm": 0.6, "attention": 0.3, "other": 0.1})


def test_the_tool_profiles_both_variants_and_the_table_renders(tmp_path, monkeypatch):
    monkeypatch.setenv("MALLOC_ARENA_MAX", "2")
    path = tmp_path / "profile.json"
    assert load_tool("profile_forward").main(["--cfg", "configs/synthetic/timesformer_tiny.yaml", "--rounds", "1",
                                              "--json", str(path)]) == 0
    data = json.loads(path.read_text())
    plain, ats = data["rows"]
    assert plain["variant"] == "no ATS" and ats["variant"].startswith("ATS topk ratio ")
    assert ats["gflops_per_clip"] < plain["gflops_per_clip"]
    for row in data["rows"]:
        assert sum(row["group_share"].values()) == pytest.approx(1.0)
        assert row["group_share"]["gemm"] > 0 and row["group_share"]["attention"] > 0
        assert row["minor_faults_per_forward"] >= 0 and len(row["rounds_s"]) == 1
    assert data["meta"]["allocator_env"] == {"MALLOC_ARENA_MAX": "2"}
    assert data["meta"]["command"].startswith("MALLOC_ARENA_MAX=2 python tools/profile_forward.py --cfg")
    table = profile_table([dict(data, _path=str(path))]).splitlines()
    assert len(table) == 4 and table[2].startswith("| profile.json | `MALLOC_ARENA_MAX=2` | TimeSformer tiny | no ATS | 1 |")
