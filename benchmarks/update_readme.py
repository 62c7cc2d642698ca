"""Regenerates the README's result tables from the benchmark JSON and the zoo cards.

    python benchmarks/update_readme.py

Each table sits between ``<!-- NAME -->`` and ``<!-- /NAME -->`` markers in README.md and
is the stdout of the command listed in BLOCKS, so the README never holds a number by hand.
"""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
BLOCKS = {
    "CLAIM_TABLE": [sys.executable, "benchmarks/render_zoo_table.py", "--claim",
                    "benchmarks/results/cpu/distillation_netvlad_k2.json"],
    "ZOO_TABLE": [sys.executable, "benchmarks/render_zoo_table.py"],
    "COST_TABLE": [sys.executable, "benchmarks/render_tables.py", "benchmarks/results/cpu/cost.json"],
    "THROUGHPUT_TABLE": [sys.executable, "benchmarks/render_tables.py", "benchmarks/results/cpu/throughput.json"],
    "DISTRIBUTED_TABLE": [sys.executable, "benchmarks/render_tables.py", "benchmarks/results/cpu/distributed.json"],
    "REPRODUCE_TABLE": [sys.executable, "-m", "kdzoo.reproduce", "benchmarks/results/cpu/reproduce_netvlad.audioset.v1.json"],
    "REPRODUCE_TABLE_NETVLAD": [sys.executable, "-m", "kdzoo.reproduce", "benchmarks/results/cpu/reproduce_netvlad.audioset.json"],
    "REPRODUCE_TABLE_NEXTVLAD": [sys.executable, "-m", "kdzoo.reproduce",
                                 "benchmarks/results/cpu/reproduce_nextvlad.audioset.json"],
    "REPRODUCE_TABLE_HRNN": [sys.executable, "-m", "kdzoo.reproduce", "benchmarks/results/cpu/reproduce_hrnn.audioset.json"],
}


def main() -> int:
    path = ROOT / "README.md"
    readme = path.read_text(encoding="utf-8")
    for name, command in BLOCKS.items():
        text = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
        start, end = f"<!-- {name} -->", f"<!-- /{name} -->"
        pattern = re.escape(start) + r".*?" + re.escape(end)
        if not re.search(pattern, readme, flags=re.S):
            raise SystemExit(f"README.md has no {start} ... {end} block")
        readme = re.sub(pattern, lambda _: f"{start}\n{text}\n{end}", readme, flags=re.S)
    path.write_text(readme, encoding="utf-8")
    print(f"updated {', '.join(BLOCKS)} in {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
