"""Prints benchmarks/results/<kind>/cost.json as Markdown tables.

    python benchmarks/render_tables.py [benchmarks/results/cpu/cost.json]
    python benchmarks/render_tables.py benchmarks/results/gpu/cost.json
"""

from __future__ import annotations

import json
import pathlib
import sys

DEFAULT = pathlib.Path(__file__).resolve().parent / "results" / "cpu" / "cost.json"


def _g(flops: float) -> str:
    return f"{flops / 1e9:.3f}"


def _batches(data: dict) -> list[str]:
    for families in data["results"].values():
        for r in families.values():
            return list(r["ratios"]["latency"])
    return []


def render(data: dict) -> str:
    batches = _batches(data)
    bs = " / ".join(f"b{b}" for b in batches)
    lines = [
        f"Device: {data['device']} ({data['cpu_count']} CPUs), TensorFlow {data['tensorflow']}",
        "",
        "| setting | family | teacher GFLOPs (frame / head) | student GFLOPs (frame / head)"
        " | FLOPs ratio | params ratio | "
        + " | ".join(f"latency ratio b{b}" for b in batches)
        + f" | teacher ms {bs} | student ms {bs} |",
        "|---|---|---|---|---|---|" + "---|" * len(batches) + "---|---|",
    ]
    sources = []
    proposals = []
    for setting, families in data["results"].items():
        for family, r in families.items():
            t, s, ratios = r["teacher"], r["student"], r["ratios"]
            lat = ratios["latency"]
            tl, sl = t["latency"], s["latency"]
            source = r.get("config", {}).get("source")
            if source:
                sources.append(f"- {setting} {family}: N={t['frames']}, k={s['frames']}, {source}")
            lines.append(
                f"| {setting} | {family} "
                f"| {_g(t['flops'])} ({_g(t['flops_split']['frame_dependent'])} / {_g(t['flops_split']['head'])}) "
                f"| {_g(s['flops'])} ({_g(s['flops_split']['frame_dependent'])} / {_g(s['flops_split']['head'])}) "
                f"| {ratios['flops']:.4f} | {ratios['params']:.3f} | "
                + " | ".join(f"{lat[b]:.3f}" for b in batches)
                + " | " + " / ".join(f"{tl[b]['median_ms']:.2f}" for b in batches)
                + " | " + " / ".join(f"{sl[b]['median_ms']:.2f}" for b in batches)
                + " |"
            )
            if "proposed_head" in r:
                p = r["proposed_head"]
                proposals.append(
                    f"| {setting} | {family} | {p['teacher_output_size']} | {p['output_size']} "
                    f"| {p['flops_ratio']:.4f} | {p['params_ratio']:.3f} "
                    f"| {'yes' if p['needed'] else 'no'} | {'yes' if p['target_reachable'] else 'no'} |"
                )
    if sources:
        lines += ["", "Models (teacher sees N frames, student k):", "", *sources]
    if proposals:
        lines += [
            "",
            "Proposed student head (output_size) for a FLOPs ratio near the target:",
            "",
            "| setting | family | teacher output_size | student output_size | FLOPs ratio"
            " | params ratio | needed | target reachable |",
            "|---|---|---|---|---|---|---|---|",
            *proposals,
        ]
    for setting, families in data["results"].items():
        sweep = families.get("hrnn", {}).get("hrnn_block_size_sweep")
        if sweep:
            lines += [
                "",
                f"H-RNN block size sweep ({setting}, batch 1):",
                "",
                "| block_size | FLOPs ratio | latency ratio | teacher ms | student ms |",
                "|---|---|---|---|---|",
            ]
            for block, v in sweep.items():
                lines.append(
                    f"| {block} | {v['flops_ratio']:.4f} | {v['latency_ratio_b1']:.3f} "
                    f"| {v['teacher_median_ms_b1']:.2f} | {v['student_median_ms_b1']:.2f} |"
                )
    return "\n".join(lines)


def render_throughput(data: dict) -> str:
    """Tables of a bench_throughput.py result: input pipeline and training throughput."""
    lines = [f"Device: {data['device']} ({data['cpu_count']} CPUs), TensorFlow {data['tensorflow']}", ""]
    lines += ["| input pipeline (AudioSet bal_train) | batch | records/s |", "|---|---|---|"]
    for name, row in data.get("pipeline", {}).get("settings", {}).items():
        lines.append(f"| {name.replace('_', ' ')} | {row['batch']} | {row['records_per_s']:,.0f} |")
    matmul = data.get("matmul", {})
    lines += ["", "| training step | batch | videos/s | achieved GFLOP/s | fraction of matmul GFLOP/s |",
              "|---|---|---|---|---|"]
    for name, row in data.get("training", {}).items():
        if isinstance(row, dict) and "videos_per_s" in row:
            lines.append(
                f"| {name} | {row['batch']} | {row['videos_per_s']:,.0f} | {row['achieved_flop_per_s'] / 1e9:.2f} "
                f"| {row['fraction_of_matmul_flop_per_s']:.4f} |"
            )
    if matmul:
        size = matmul.get("size", "")
        rate = matmul.get("flop_per_s") or matmul.get("achieved_flop_per_s")
        if rate:
            lines += ["", f"Reference: a {size}x{size} float32 matmul ran at {rate / 1e9:.1f} GFLOP/s in the same run."]
    return "\n".join(lines)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    path = pathlib.Path(argv[0]) if argv else DEFAULT
    data = json.loads(path.read_text())
    print(render_throughput(data) if "pipeline" in data or "training" in data else render(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
