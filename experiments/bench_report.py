"""The benchmark tables of docs/benchmarks.md and README.md, rendered from the committed JSON.

Every number in those tables comes from a JSON file under docs/bench/ that a benchmark run
wrote; nothing is copied by hand. A table lives between two markers in the Markdown file::

    <!-- bench:speed -->
    ...generated...
    <!-- /bench:speed -->

`render_files` rewrites what is between the markers and leaves the rest of the file alone;
`stale_blocks` says which blocks differ from what the JSON gives (a test keeps them equal).
"""

from __future__ import annotations

import glob
import json
import os
import re
from typing import Dict, List, Optional, Sequence

# The targets of issue #16, per backbone and batch size, measured side by side in one run.
TARGET_VS_MMACTION = 1.10           # ours without ATS / mmaction2's TimeSformer, clips/s
TARGET_MATMUL_FRACTION = 0.90       # ours without ATS / the faster fp32 matmul reference
TARGET_EFFICIENCY = 0.95            # ATS speedup / GFLOPs ratio

MODEL_TITLES = {"timesformer_base": "TimeSformer 8×224", "timesformer_hr": "TimeSformer-HR 16×448",
                "timesformer_large": "TimeSformer-L 96×224", "xvit_b16_8": "XViT-B/16 8×",
                "xvit_b16_16": "XViT-B/16 16×", "xvit_b16_32": "XViT-B/16 32×",
                "timesformer_tiny": "TimeSformer tiny", "xvit_tiny": "XViT tiny"}

_BLOCK = re.compile(r"(<!-- bench:(?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /bench:(?P=name) -->)", re.S)


def load(path: str) -> Optional[dict]:
    """The JSON a benchmark run wrote, or None when the file does not exist."""
    if not os.path.exists(path):
        return None
    with open(path) as handle:
        return json.load(handle)


def _title(model: str) -> str:
    return MODEL_TITLES.get(model, model)


def _num(value: Optional[float], digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _mb(value: Optional[float]) -> str:
    return "–" if value is None else f"{value:,.0f}"


def _markdown(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def host_line(data: dict) -> str:
    """The machine a run measured on, in one sentence."""
    env = data["meta"].get("environment", {})
    load = data["meta"].get("loadavg")
    cpu = env.get("processor", "?")
    if env.get("cpu_isa"):
        cpu += ", " + " ".join(env["cpu_isa"])
    if env.get("cache_kib", {}).get("L3"):
        cpu += f", L3 {env['cache_kib']['L3'] // 1024} MiB"
    parts = [f"{env.get('cpu_count', '?')} CPU cores ({cpu})",
             f"torch {env.get('torch', '?')}", f"torch threads: {env.get('torch_threads', '?')}"]
    if env.get("gpu"):
        parts.insert(0, env["gpu"])
    text = ", ".join(parts)
    if load:
        text += (f"; 1-minute load average {load['before'][0]:.2f} before the run, "
                 f"{load['after'][0]:.2f} after it")
    return text


def host_class(env: dict) -> str:
    """A short name for the kind of CPU a run measured on: the model name and the widest
    vector/matrix extension it reports ("Intel Xeon, AVX-512 + AMX"; "AMD EPYC" when the run
    predates the ISA record)."""
    name = env.get("processor", "?").replace("(R)", "").replace(" Processor", "").strip()
    isa = set(env.get("cpu_isa", []))
    if "amx_tile" in isa:
        name += ", AVX-512 + AMX"
    elif "avx512f" in isa:
        name += ", AVX-512"
    elif "avx2" in isa:
        name += ", AVX2"
    if env.get("gpu"):
        name = f"{env['gpu']} ({name})"
    return name


def _bench_name(data: dict) -> str:
    """The run's file relative to docs/bench/ ("cpu_2threads.json", "hosts/amd_epyc_2threads.json")."""
    path = data.get("_path", "cpu_2threads.json")
    parent = os.path.basename(os.path.dirname(path))
    return f"{parent}/{os.path.basename(path)}" if parent == "hosts" else os.path.basename(path)


def hosts_table(runs: Sequence[dict]) -> str:
    """The targets of each recorded run of the same command, one line per host, model and batch:
    the same comparison on every host class it was measured on."""
    header = ["host class", "run", "model", "batch", "matmul default / oneDNN (GMAC/s)",
              f"ours / mmaction2 (≥ {TARGET_VS_MMACTION:.2f})", f"of the faster matmul (≥ {TARGET_MATMUL_FRACTION:.2f})",
              f"ATS efficiency (≥ {TARGET_EFFICIENCY:.2f})", "load before"]
    lines = []
    for data in runs:
        meta = data["meta"]
        name = _bench_name(data)
        load = meta.get("loadavg", {}).get("before")
        for (model, batch, dtype, compiled), group in _groups(data["rows"]).items():
            plain, ats = group.get("plain"), group.get("ats")
            if plain is None or dtype != "fp32" or compiled:
                continue
            rates = plain.get("matmul_gmacs_by_library", {})
            mmaction = plain.get("vs_mmaction")
            lines.append([host_class(meta.get("environment", {})), f"[{name}](bench/{name})", _title(model), batch,
                          f"{_num(rates.get('default'), 1)} / {_num(rates.get('onednn'), 1)}",
                          _verdict(mmaction, TARGET_VS_MMACTION, "×") if mmaction is not None else "–",
                          _verdict(plain["matmul_fraction"], TARGET_MATMUL_FRACTION),
                          _verdict(ats and ats.get("efficiency"), TARGET_EFFICIENCY),
                          f"{load[0]:.2f}" if load else "–"])
    return _markdown(header, lines)


def profile_table(runs: Sequence[dict]) -> str:
    """Per run of tools/profile_forward.py (its allocator settings), model and variant: the
    median forward, page faults, and the shares of the profiled self time."""
    header = ["run", "allocator settings", "model", "variant", "batch", "median forward (s)", "GMAC/s",
              "minor page faults per forward", "GEMMs", "attention (SDPA)", "other"]
    lines = []
    for data in runs:
        settings = " ".join(f"`{k}={v}`" for k, v in data["meta"].get("allocator_env", {}).items()) or "default"
        name = os.path.basename(data.get("_path", "–"))
        for row in data["rows"]:
            share = row["group_share"]
            lines.append([name, settings, _title(row["model"]), row["variant"], row["batch_size"],
                          f"{row['median_s']:.3f}", f"{row['gflops_per_clip'] * row['batch_size'] / row['median_s']:.1f}",
                          f"{row['minor_faults_per_forward']:,.0f}", f"{100 * share['gemm']:.1f} %",
                          f"{100 * share['attention']:.1f} %", f"{100 * share['other']:.1f} %"])
    return _markdown(header, lines)


def command_block(data: dict) -> str:
    meta = data["meta"]
    elapsed = meta.get("elapsed_s")
    lines = ["```bash", meta.get("command", "?"), "```"]
    if elapsed is not None:
        lines.append(f"\nOne run, {elapsed:.0f} s, on {host_line(data)}.")
    if "kernel_trials" not in meta and meta.get("environment", {}).get("device", "cpu") == "cpu":
        lines.append("\nThis run predates the per-shape choice of the linear-layer path: every CPU fp32 linear "
                     "layer ran on oneDNN, and the run recorded no paths, trials, training or memory table.")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Inference


def speed_table(rows: Sequence[dict]) -> str:
    """Every inference row, one line each."""
    header = ["model", "variant", "batch", "GFLOPs/clip", "clips/s", "latency (s)", "peak mem (MB)", "GFLOPs ratio",
              "speedup", "efficiency", "% of matmul", "vs mmaction2"]
    return _markdown(header, [
        [row["model"], row["variant"], row["batch_size"], f"{row['gflops_per_clip']:.1f}", f"{row['clips_per_s']:.3f}",
         f"{row['latency_s']:.3f}", _mb(row.get("peak_memory_mb")), _num(row.get("gflops_ratio")),
         _num(row.get("speedup")), _num(row.get("efficiency")), f"{100 * row['matmul_fraction']:.0f}",
         _num(row.get("vs_mmaction"))] for row in rows])


def _groups(rows: Sequence[dict]) -> Dict[tuple, Dict[str, dict]]:
    """(model, batch, dtype, compiled) -> {"plain": row, "ats": row, "mmaction2": row}."""
    groups: Dict[tuple, Dict[str, dict]] = {}
    for row in rows:
        key = (row["model"], row["batch_size"], row["dtype"], row.get("compiled", False))
        group = groups.setdefault(key, {})
        if row["variant"] == "no ATS":
            group["plain"] = row
        elif row["implementation"] == "mmaction2":
            group["mmaction2"] = row
        elif row.get("speedup") is not None and "ats" not in group:
            group["ats"] = row
    return groups


def _verdict(value: Optional[float], target: float, unit: str = "") -> str:
    if value is None:
        return "–"
    if value >= target:
        return f"{value:.3f}{unit}: met"
    return f"{value:.3f}{unit}: **missed by {100 * (target - value) / target:.1f} %**"


def targets_table(rows: Sequence[dict]) -> str:
    """The three targets per model and batch size, each with its verdict."""
    header = ["model", "batch", f"ours / mmaction2 (≥ {TARGET_VS_MMACTION:.2f})",
              f"of the faster matmul (≥ {TARGET_MATMUL_FRACTION:.2f})", f"ATS efficiency (≥ {TARGET_EFFICIENCY:.2f})"]
    lines = []
    for (model, batch, dtype, compiled), group in _groups(rows).items():
        plain, ats = group.get("plain"), group.get("ats")
        if plain is None:
            continue
        mmaction = plain.get("vs_mmaction")
        versus = _verdict(mmaction, TARGET_VS_MMACTION, "×") if mmaction is not None else "– (no mmaction2 model)"
        label = _title(model)
        if dtype != "fp32" or compiled:
            label += f" ({dtype}{', compiled' if compiled else ''})"
        lines.append([label, batch, versus, _verdict(plain["matmul_fraction"], TARGET_MATMUL_FRACTION),
                      _verdict(ats and ats.get("efficiency"), TARGET_EFFICIENCY)])
    return _markdown(header, lines)


def matmul_table(rows: Sequence[dict]) -> str:
    """The host's GEMM throughput at each benchmark shape, per library, and the paths our
    models' linear layers took."""
    header = ["model", "batch", "rows per layer", "default (GMAC/s)", "oneDNN (GMAC/s)", "oneDNN / default",
              "our linear layers ran on"]
    lines = []
    for (model, batch, dtype, compiled), group in _groups(rows).items():
        plain = group.get("plain")
        if plain is None:
            continue
        rates = plain.get("matmul_gmacs_by_library", {})
        default, onednn = rates.get("default"), rates.get("onednn")
        ratio = _num(onednn / default) if default and onednn else "–"
        used = _paths_summary(plain.get("linear_paths"))
        tokens = plain.get("matmul_rows") or "–"
        lines.append([_title(model), batch, tokens, _num(default, 1), _num(onednn, 1), ratio, used])
    return _markdown(header, lines)


def _paths_summary(paths: Optional[Dict[str, Dict[str, int]]]) -> str:
    """{"blocks.*.mlp.fc1": {"onednn": 12}} -> "mlp.fc1 oneDNN; ..." (calls split when mixed)."""
    if not paths:
        return "not recorded"
    names = {"default": "default", "onednn": "oneDNN"}
    parts = []
    for layer, calls in paths.items():
        short = layer.replace("blocks.*.", "")
        if len(calls) == 1:
            parts.append(f"{short} {names.get(next(iter(calls)), next(iter(calls)))}")
        else:
            parts.append(f"{short} " + " + ".join(f"{names.get(k, k)} ×{v}" for k, v in sorted(calls.items())))
    return "; ".join(parts)


def trials_table(trials: Sequence[dict]) -> str:
    """The linear-kernel trials of the run (one per layer shape, epilogue and row bucket)."""
    if not trials:
        return "No trial ran (a forced kernel, or no CPU fp32 inference)."
    header = ["in → out", "epilogue", "rows (bucket)", "trial rows", "threads", "default (ms)", "oneDNN (ms)", "chosen"]
    lines = []
    for trial in trials:
        seconds = trial["seconds"]
        bucket = f"> {trial['rows_bucket'] // 2}" if trial["rows_bucket"] >= 1024 else f"≤ {trial['rows_bucket']}"
        lines.append([f"{trial['in_features']} → {trial['out_features']}", trial["epilogue"], bucket,
                      trial["trial_rows"], trial["threads"], f"{1e3 * seconds['default']:.2f}",
                      f"{1e3 * seconds['onednn']:.2f}", trial["kernel"]])
    return _markdown(header, lines)


# ---------------------------------------------------------------------------------------------
# Training and memory


def train_table(rows: Sequence[dict]) -> str:
    """Every training-step row, one line each."""
    header = ["model", "variant", "batch", "dtype", "GFLOPs/clip (forward)", "step (s)", "clips/s", "GFLOPs ratio",
              "speedup", "efficiency", "peak of a step (MB)", "weights + optimizer (MB)"]
    return _markdown(header, [
        [row["model"], row["variant"], row["batch_size"], row["dtype"], f"{row['gflops_per_clip']:.1f}",
         f"{row['step_s']:.3f}", f"{row['clips_per_s']:.3f}", _num(row.get("gflops_ratio")), _num(row.get("speedup")),
         _num(row.get("efficiency")), _mb(row.get("peak_memory_mb")), _mb(row["state_memory_mb"])] for row in rows])


def memory_table(rows: Sequence[dict], limit_gb: float) -> str:
    """Per model and variant: inference peak at each batch, the largest training batch within
    the limit with its total, and the next batch's total."""
    inference_batches = sorted({row["batch_size"] for row in rows if row["mode"] == "inference"})
    header = (["model", "variant"] + [f"inference, batch {b} (MB)" for b in inference_batches]
              + [f"largest training batch within {limit_gb:g} GB", "its total (MB)", "next batch's total (MB)"])
    lines = []
    keys = []
    for row in rows:
        if (row["model"], row["variant"]) not in keys:
            keys.append((row["model"], row["variant"]))
    for model, variant in keys:
        mine = [row for row in rows if row["model"] == model and row["variant"] == variant]
        cells = [_title(model), variant]
        for batch in inference_batches:
            match = [row for row in mine if row["mode"] == "inference" and row["batch_size"] == batch]
            cells.append(_mb(match[0]["peak_memory_mb"]) if match else "–")
        train = sorted((row for row in mine if row["mode"] == "train"), key=lambda row: row["batch_size"])
        largest = [row for row in train if row.get("largest_within_limit")]
        if largest:
            best = largest[0]
            after = [row for row in train if row["batch_size"] == best["batch_size"] + 1]
            cells += [str(best["batch_size"]), _mb(best["total_memory_mb"]),
                      _mb(after[0]["total_memory_mb"]) if after and after[0]["total_memory_mb"] else "out of memory"]
        else:
            cells += ["not found", "–", "–"]
        lines.append(cells)
    return _markdown(header, lines)


# ---------------------------------------------------------------------------------------------
# README


def readme_table(data: dict, other_hosts: Sequence[dict] = ()) -> str:
    """The README's speed table: per model and batch, no ATS → ATS, and mmaction2; the host
    class, and ours vs mmaction2 on the other host classes."""
    rows = data["rows"]
    header = ["model", "batch", "GFLOPs/clip, no ATS → ATS", "clips/s, no ATS → ATS", "speedup / GFLOPs ratio",
              "mmaction2 TimeSformer (ours ×)"]
    lines = []
    for (model, batch, dtype, compiled), group in _groups(rows).items():
        plain, ats, mmaction = group.get("plain"), group.get("ats"), group.get("mmaction2")
        if plain is None or ats is None:
            continue
        versus = f"{mmaction['clips_per_s']:.3f} clips/s (×{plain['vs_mmaction']:.2f})" if mmaction else "–"
        lines.append([_title(model), batch, f"{plain['gflops_per_clip']:.1f} → {ats['gflops_per_clip']:.1f}",
                      f"{plain['clips_per_s']:.3f} → {ats['clips_per_s']:.3f}", f"{ats['efficiency']:.2f}", versus])
    for row in data.get("train_rows") or []:
        if row.get("speedup") is not None:
            lines.append([f"{_title(row['model'])}, training step ({row['dtype']})", row["batch_size"],
                          f"{row['gflops_per_clip'] * row['gflops_ratio']:.1f} → {row['gflops_per_clip']:.1f}",
                          f"{row['clips_per_s'] / row['speedup']:.3f} → {row['clips_per_s']:.3f}",
                          f"{row['efficiency']:.2f}", "–"])
    fractions = [group["plain"]["matmul_fraction"] for group in _groups(rows).values() if "plain" in group]
    text = _markdown(header, lines)
    name = _bench_name(data)
    train_dtypes = sorted({row["dtype"] for row in data.get("train_rows") or []} - {"fp32"})
    precision = "fp32" + (f" (training also {' and '.join(train_dtypes)} autocast)" if train_dtypes else "")
    text += (f"\n\nHost class: {host_class(data['meta'].get('environment', {}))}. Host: {host_line(data)}; "
             f"{precision}, one run ([docs/bench/{name}](docs/bench/{name})). ")
    if "kernel_trials" not in data["meta"]:
        text += "Measured before the per-shape choice of the linear-layer path (every layer on oneDNN). "
    if fractions:
        text += (f"Without ATS the forward runs at {100 * min(fractions):.0f}–{100 * max(fractions):.0f} % of "
                 "the faster of the host's two fp32 matmul libraries.")
    for other in other_hosts:
        versus = [f"×{group['plain']['vs_mmaction']:.2f} at batch {batch}"
                  for (model, batch, dtype, compiled), group in _groups(other["rows"]).items()
                  if "plain" in group and group["plain"].get("vs_mmaction") is not None]
        text += (f" The same command on {host_class(other['meta'].get('environment', {}))} "
                 f"([docs/bench/{_bench_name(other)}](docs/bench/{_bench_name(other)})): ours vs mmaction2's "
                 f"TimeSformer {', '.join(versus) or 'not measured'}.")
    return text


# ---------------------------------------------------------------------------------------------
# Files


def blocks(data: Optional[dict], gpu: Optional[dict] = None, other_hosts: Sequence[dict] = ()) -> Dict[str, str]:
    """Every generated block: name -> Markdown. ``other_hosts``: other runs of the same command
    (docs/bench/hosts/: other host classes, earlier runs), listed after ``data`` in the hosts block."""
    missing = "Not measured yet: run `make bench` (see the command above)."
    out: Dict[str, str] = {}
    if data is None:
        return {name: missing for name in ("command", "speed", "targets", "matmul", "trials", "train", "memory",
                                           "readme-speed", "hosts")}
    out["hosts"] = hosts_table([data, *other_hosts])
    out["command"] = command_block(data)
    out["speed"] = speed_table(data["rows"])
    out["targets"] = targets_table(data["rows"])
    out["matmul"] = matmul_table(data["rows"])
    trials = data["meta"].get("kernel_trials")
    out["trials"] = trials_table(trials) if trials is not None else "Not recorded by this run."
    out["train"] = train_table(data["train_rows"]) if data.get("train_rows") else missing
    limit = data["meta"].get("train_spec", {}).get("memory_limit_gb", 8.0)
    out["memory"] = memory_table(data["memory_rows"], limit) if data.get("memory_rows") else missing
    out["readme-speed"] = readme_table(data, other_hosts)
    out["gpu"] = gpu_block(gpu)
    return out


def gpu_block(gpu: Optional[dict]) -> str:
    """The GPU check's results and benchmark table, or a line saying it has not run."""
    if gpu is None or not gpu.get("meta", {}).get("cuda"):
        return ("Not run on a GPU yet: no CUDA machine was available for this work. `make gpu-check` on one "
                "writes docs/bench/gpu_check.json and this section is rendered from it.")
    checks = _markdown(["check", "result", "seconds", "detail"],
                       [[check["name"], check["status"], f"{check['seconds']:.1f}", check.get("detail", "")]
                        for check in gpu["checks"]])
    text = f"On {host_line(gpu)}:\n\n" + checks
    if gpu.get("rows"):
        text += "\n\n" + speed_table(gpu["rows"])
    return text


def replace_blocks(text: str, generated: Dict[str, str]) -> str:
    """``text`` with the body of every known marker pair replaced by its generated block."""
    def body(match: re.Match) -> str:
        name = match.group("name")
        if name not in generated:
            return match.group(0)
        return f"{match.group(1)}{generated[name].rstrip()}\n{match.group(4)}"
    return _BLOCK.sub(body, text)


def block_names(text: str) -> List[str]:
    return [match.group("name") for match in _BLOCK.finditer(text)]


def _runs(pattern: str) -> List[dict]:
    runs = []
    for path in sorted(glob.glob(pattern)):
        data = load(path)
        data["_path"] = path
        runs.append(data)
    return runs


def generated_blocks(json_path: str, gpu_json: Optional[str] = None) -> Dict[str, str]:
    """`blocks` of the JSON files (either may be absent), with the other hosts' runs
    (``hosts/*.json`` beside ``json_path``) and the forward profiles (``profile*.json`` there)."""
    data = load(json_path)
    if data is not None:
        data["_path"] = json_path
    directory = os.path.dirname(json_path) or "."
    generated = blocks(data, load(gpu_json) if gpu_json else None, _runs(os.path.join(directory, "hosts", "*.json")))
    profiles = _runs(os.path.join(directory, "profile*.json"))
    generated["profile"] = (profile_table(profiles) if profiles else
                            "Not measured yet: run `python tools/profile_forward.py ... --json docs/bench/profile_cpu_2threads.json`.")
    return generated


def _texts(paths: Sequence[str]) -> Dict[str, str]:
    texts = {}
    for path in paths:
        with open(path) as handle:
            texts[path] = handle.read()
    return texts


def render_files(json_path: str, markdown_paths: Sequence[str], gpu_json: Optional[str] = None) -> List[str]:
    """Rewrite the generated blocks of each Markdown file from the JSON; returns the files changed."""
    generated = generated_blocks(json_path, gpu_json)
    changed = []
    for path, text in _texts(markdown_paths).items():
        new = replace_blocks(text, generated)
        if new != text:
            with open(path, "w") as handle:
                handle.write(new)
            changed.append(path)
    return changed


def stale_blocks(json_path: str, markdown_paths: Sequence[str], gpu_json: Optional[str] = None) -> List[str]:
    """``path:block`` for every generated block whose text differs from what the JSON gives."""
    generated = generated_blocks(json_path, gpu_json)
    stale = []
    for path, text in _texts(markdown_paths).items():
        stale += [f"{path}:{match.group('name')}" for match in _BLOCK.finditer(text)
                  if match.group("name") in generated
                  and match.group("body").rstrip() != generated[match.group("name")].rstrip()]
    return stale
