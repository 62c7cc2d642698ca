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
                sources.append(f"- {setting} {family}: N={t['num_frames']}, k={s['num_frames']}, {source}")
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
    lines += _render_end_to_end(data, batches)
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
            per_k = families["hrnn"].get("hrnn_student_block")
            if per_k:
                lines += [
                    "",
                    f"Per-student block ({setting}): teacher block {per_k['teacher_block_size']}, student block "
                    f"min(block, k) = {per_k['student_block_size']}: FLOPs ratio {per_k['flops_ratio']:.4f}, "
                    f"latency ratio b1 {per_k['latency_ratio_b1']:.3f} (zoo config option `students: "
                    f"{{k: {{aggregator: {{block_size: k}}}}}}`).",
                ]
    return "\n".join(lines)


def _render_end_to_end(data: dict, batches: list[str]) -> list[str]:
    """The encoder table and the end-to-end (encoder + aggregator) teacher-vs-student table."""
    encoders = {s: e for s, e in data.get("encoders", {}).items() if e}
    if not encoders:
        return []
    lines = [
        "",
        f"End to end: the per-frame encoder on the frames each model sees, plus the aggregator "
        f"({data.get('encoder_note', '')}). {data.get('encoder_latency_method', '')}.",
        "",
        "| setting | encoder | params | GFLOPs / frame | ms / frame (call of C frames) | C |",
        "|---|---|---|---|---|---|",
    ]
    fits = []
    for setting, e in encoders.items():
        lines.append(
            f"| {setting} | {e.get('encoder', e['name'])} | {e['params']:,} | {e['flops_per_frame'] / 1e9:.3f} "
            f"| {e['per_frame_ms']:.1f} | {e['max_direct_frames']} |"
        )
        measured = sorted((int(m), v["ms"]) for m, v in e["latency"].items() if v["method"] == "measured")
        if len(measured) >= 2:
            (m0, t0), (m1, t1) = measured[0], measured[-1]
            per_frame = (t1 - t0) / (m1 - m0)
            fits.append(f"{setting}: {t0:,.0f} ms for {m0} frames, {t1:,.0f} ms for {m1}, i.e. about "
                        f"{t0 - m0 * per_frame:,.0f} ms a call + {per_frame:,.0f} ms a frame")
    if fits:
        lines += ["", "Encoder calls measured directly in this run (a fixed cost per call, e.g. reading the "
                  "weights, plus a cost per frame): " + "; ".join(fits) + "."]
    load = data.get("load_average_at_start")
    if load:
        lines += ["", f"Load average of the machine (1/5/15 min) at the start of the run: "
                  f"{' / '.join(f'{x:.1f}' for x in load)}; at the end: "
                  f"{' / '.join(f'{x:.1f}' for x in data.get('load_average_at_end', []))}."]
    bs = " / ".join(f"b{b}" for b in batches)
    lines += [
        "",
        "| setting | family | teacher GFLOPs | student GFLOPs | FLOPs ratio | k/N | "
        + " | ".join(f"latency ratio b{b}" for b in batches)
        + f" | teacher ms {bs} | student ms {bs} |",
        "|---|---|---|---|---|---|" + "---|" * len(batches) + "---|---|",
    ]
    checks = []
    for setting, families in data["results"].items():
        for family, r in families.items():
            e = r.get("end_to_end")
            if not e:
                continue
            t, s, ratios = e["teacher"], e["student"], e["ratios"]
            lines.append(
                f"| {setting} | {family} | {_g(t['flops'])} | {_g(s['flops'])} | {ratios['flops']:.4f} "
                f"| {ratios['num_frames']:.4f} | "
                + " | ".join(f"{ratios['latency'][b]:.3f}" for b in batches)
                + " | " + " / ".join(f"{t['latency'][b]:,.1f}" for b in batches)
                + " | " + " / ".join(f"{s['latency'][b]:,.1f}" for b in batches)
                + " |"
            )
            for name, check in r.get("targets_met", {}).items():
                checks.append(
                    f"| {setting} | {family} | {name.replace('_', ' ')} | {check['value']:.4f} "
                    f"| {'<=' if 'vs_k' not in name else 'within'} {check['target']} "
                    + (f"of k/N = {check['k_over_n']:.4f}" if "k_over_n" in check else "")
                    + f" | {'yes' if check['met'] else '**no**'} |"
                )
    if checks:
        lines += ["", "Targets (this run):", "", "| setting | family | ratio | measured | target | met |",
                  "|---|---|---|---|---|---|", *checks]
    return lines


def render_throughput(data: dict) -> str:
    """Tables of a bench_throughput.py result: input pipeline and training throughput."""
    lines = [f"Device: {data['device']} ({data['cpu_count']} CPUs), TensorFlow {data['tensorflow']}", ""]
    lines += ["| input pipeline (AudioSet bal_train) | batch | records/s |", "|---|---|---|"]
    for name, row in data.get("pipeline", {}).get("settings", {}).items():
        lines.append(f"| {name.replace('_', ' ')} | {row['batch']} | {row['records_per_s']:,.0f} |")
    ratio = data.get("pipeline", {}).get("reader_ratio")
    if ratio:
        lines += ["", f"kdzoo reader / plain batched reader ({ratio['kdzoo'].replace('_', ' ')}, same run): "
                      f"{ratio['value']:.2f} (target >= {ratio['target']}: {'met' if ratio['met'] else 'not met'})."]
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


def render_distributed(data: dict) -> str:
    """Table of a bench_distributed.py result: 1 vs 2 local workers, the speed-up."""
    lines = [f"Device: {data['device']} ({data['cpu_count']} CPUs), TensorFlow {data['tensorflow']}; "
             f"{data['zoo_config']}, {data['data']}, batch {data['batch_size_per_replica']} per replica", "",
             "| workers | global batch | steps / epoch | teacher videos/s | student videos/s | whole command (s) "
             "| load average (1 min, before / after) |", "|---|---|---|---|---|---|---|"]
    for run in data["runs"].values():
        t, s = run["teacher"], run["student"]
        load = " / ".join(f"{x:.1f}" for x in run["load_average_1min"])
        lines.append(f"| {run['workers']} | {t['global_batch_size']} | {t['steps_per_epoch']} | {t['videos_per_s']:,.0f} "
                     f"| {s['videos_per_s']:,.0f} | {run['command_seconds']:.0f} | {load} |")
    speedup = data["speedup_2_vs_1_workers"]
    lines += ["", f"Speed-up of 2 workers over 1 (same run, training steps): teacher {speedup['teacher']:.2f}x, "
              f"student {speedup['student']:.2f}x."]
    return "\n".join(lines)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    path = pathlib.Path(argv[0]) if argv else DEFAULT
    data = json.loads(path.read_text())
    if "speedup_2_vs_1_workers" in data:
        print(render_distributed(data))
    else:
        print(render_throughput(data) if "pipeline" in data or "training" in data else render(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
