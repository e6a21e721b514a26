"""Mean and spread of several runs' reports (e.g. the same config over seeds).

  python -m pipelines.compare_runs runs/seed0 runs/seed1 runs/seed2

On small data the gaps the method predicts (about a point on digits) are of
the order of the seed-to-seed spread, so claims rest on means over seeds.
"""

from __future__ import annotations

import os
import statistics
from collections import defaultdict

from absl import flags

from efficientnet.util import cli, fileio
from pipelines.report import REPORT_FILE

FLAGS = flags.FLAGS


def summarize(work_dirs: list[str]) -> list[dict]:
    """One row per (round, role): mean, population std and values of each split's top-1."""
    values: dict[tuple[int, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for work_dir in work_dirs:
        for row in fileio.read_json(os.path.join(work_dir, REPORT_FILE))["models"]:
            for split in ("validation", "test"):
                values[(row["round"], row["role"])][split].append(row[split])
    rows = []
    for (round_index, role), splits in sorted(values.items()):
        row = {"round": round_index, "role": role, "runs": len(splits["test"])}
        for split, numbers in splits.items():
            row[split] = {"mean": statistics.fmean(numbers), "std": statistics.pstdev(numbers), "values": numbers}
        rows.append(row)
    return rows


def to_markdown(rows: list[dict]) -> str:
    lines = ["| round | model | runs | validation mean ± std | test mean ± std |", "|---|---|---|---|---|"]
    for row in rows:
        cells = [f"{row[s]['mean']:.4f} ± {row[s]['std']:.4f}" for s in ("validation", "test")]
        lines.append(f"| {row['round']} | {row['role']} | {row['runs']} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


def main(argv):
    if len(argv) < 2:
        raise ValueError(f"give one or more work directories holding {REPORT_FILE}")
    print(to_markdown(summarize(argv[1:])))


if __name__ == "__main__":
    cli.run(main)
