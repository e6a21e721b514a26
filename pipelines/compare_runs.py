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
from pipelines.report import REPORT_FILE, gaps_closed

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


def summarize_gaps(work_dirs: list[str], split: str = "test") -> list[dict]:
    """Per round, mean and std over runs of the share of the teacher→oracle gap the student closed.

    Computed run by run (each run's own teacher and oracle), from the runs that
    have an oracle row; a run whose oracle is not above its teacher is left out.
    """
    closed: dict[int, list[float]] = defaultdict(list)
    for work_dir in work_dirs:
        models = fileio.read_json(os.path.join(work_dir, REPORT_FILE))["models"]
        for round_index, share in gaps_closed(models, split).items():
            if share is not None:
                closed[round_index].append(share)
    return [
        {"round": k, "runs": len(v), "mean": statistics.fmean(v), "std": statistics.pstdev(v), "values": v}
        for k, v in sorted(closed.items())
    ]


def gaps_to_markdown(rows: list[dict], split: str = "test") -> str:
    lines = [f"| round | runs | share of the teacher→oracle gap closed ({split}), mean ± std |", "|---|---|---|"]
    lines += [f"| {row['round']} | {row['runs']} | {row['mean']:.2f} ± {row['std']:.2f} |" for row in rows]
    return "\n".join(lines)


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
    gaps = summarize_gaps(argv[1:])
    if gaps:
        print()
        print(gaps_to_markdown(gaps))


if __name__ == "__main__":
    cli.run(main)
