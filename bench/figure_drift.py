"""How far `pancscan evaluate` moves when only the order of float operations changes.

Not a speed benchmark: it measures what the tolerances of
`tests/model/test_model_card.py::test_a_fresh_evaluate_reproduces_the_committed_report` rest on.
Machines differ in the kernels LiteRT picks (XNNPACK by CPU features and threads), so the same model
gives other last digits elsewhere. Here the evaluation runs, each in a fresh process, under
conditions that change float order on this one machine:

- ``xnnpack-1``: LiteRT as shipped (XNNPACK, one thread: $PANCSCAN_THREADS unset)
- ``xnnpack-2``: XNNPACK with two threads
- ``builtin-1`` / ``builtin-2``: XNNPACK off (TFLite's own kernels), one and two threads

and each run is compared with the committed evaluation (model/evaluation: report.json, scores.csv):
per item, the largest probability difference and every decision that flipped (the threshold, a
tumour slice against its erased twin, the heatmap peak on the tumour); per figure of the report,
every difference. It also prints how close the committed scores come to those decisions.

    python bench/figure_drift.py [--data ../shared/data/nih-pancreas-ct-slices]
                                 [--msd ../shared/data/msd-pancreas-tumour-ct-slices] [--out build/drift]

About 2 min a condition on 2 cores (builtin-1: 4 min).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from pancscan_model.evaluate import read_scores
from pancscan_model.reproduction import COMMITTED, decision_margins, figure_differences, item_differences, leaves

CONDITIONS = {"xnnpack-1": ("1", "AUTO"), "xnnpack-2": ("2", "AUTO"),
              "builtin-1": ("1", "BUILTIN_WITHOUT_DEFAULT_DELEGATES"), "builtin-2": ("2", "BUILTIN_WITHOUT_DEFAULT_DELEGATES")}

CHILD = r"""
import sys
from ai_edge_litert.interpreter import Interpreter, OpResolverType
from pancscan.detection import model
from pancscan_model.evaluate import evaluate

resolver = getattr(OpResolverType, sys.argv[1])
model._interpreter = lambda path: Interpreter(model_path=str(path), num_threads=model.interpreter_threads(),
                                             experimental_op_resolver_type=resolver)
evaluate(sys.argv[2], msd_dir=sys.argv[3], out_dir=sys.argv[4], log=lambda line: None)
"""


def run(condition: str, data: Path, msd: Path, out: Path) -> Path:
    threads, resolver = CONDITIONS[condition]
    folder = out / condition
    env = {**os.environ, "PANCSCAN_THREADS": threads}
    subprocess.run([sys.executable, "-c", CHILD, resolver, str(data), str(msd), str(folder)], env=env, check=True)
    return folder


def item_drift(fresh: list[dict], committed: list[dict], threshold: float) -> dict:
    """The largest probability difference per kind of item, and the decisions that flipped."""
    drift = {}
    for kind in dict.fromkeys(r["kind"] for r in committed):
        a, b = (np.array([r["probability"] for r in rows if r["kind"] == kind]) for rows in (fresh, committed))
        drift[f"probability, {kind}"] = float(np.abs(a - b).max())
    pairs = list(zip(fresh, committed))
    slices = [(a, b) for a, b in pairs if a["kind"] != "series"]
    drift["slices across the threshold"] = sum((a["probability"] >= threshold) != (b["probability"] >= threshold) for a, b in slices)
    twins = [[r["probability"] for r in rows if r["kind"] == kind] for rows in (fresh, committed) for kind in ("tumour", "erased")]
    drift["tumour slices against their erased twin"] = sum((t1 > e1) != (t0 > e0) for t1, e1, t0, e0 in zip(*twins))
    drift["heatmap peaks on the tumour"] = sum(a["peak_on_tumour"] != b["peak_on_tumour"] for a, b in pairs)
    drift["rejections"] = sum(a["rejected"] != b["rejected"] for a, b in pairs)
    return drift


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/nih-pancreas-ct-slices"))
    parser.add_argument("--msd", type=Path, default=Path("../shared/data/msd-pancreas-tumour-ct-slices"))
    parser.add_argument("--out", type=Path, default=Path("build/drift"))
    parser.add_argument("--conditions", nargs="+", default=list(CONDITIONS), choices=list(CONDITIONS))
    args = parser.parse_args(argv)

    committed_report = json.loads((COMMITTED / "report.json").read_text())
    committed_scores = read_scores(COMMITTED / "scores.csv")
    thresholds = (committed_report["threshold"], committed_report["series"]["threshold"])
    print("committed scores, closest to a decision (probability):")
    for name, margin in decision_margins(committed_scores, *thresholds).items():
        print(f"    {name:44s} {margin:.2e}")
    for condition in args.conditions:
        folder = run(condition, args.data, args.msd, args.out)
        fresh_report = json.loads((folder / "report.json").read_text())
        fresh_scores = read_scores(folder / "scores.csv")
        print(f"\n{condition}: largest difference per kind of item; decisions flipped")
        for name, value in item_drift(fresh_scores, committed_scores, thresholds[0]).items():
            print(f"    {name:44s} {value:.2e}" if isinstance(value, float) else f"    {name:44s} {value}")
        moved = [(abs(a - b), path) for (path, a), (_, b) in zip(leaves(fresh_report), leaves(committed_report))
                 if isinstance(b, float) and a != b]
        print(f"    figures that moved: {len(moved)} of {sum(isinstance(b, float) for _, b in leaves(committed_report))}")
        for delta, path in sorted(moved, reverse=True):
            print(f"        {delta:.2e}  {path}")
        outside = item_differences(fresh_scores, committed_scores) + figure_differences(fresh_report, committed_report)
        print(f"    beyond the test's tolerances: {len(outside)}" + "".join(f"\n        {line}" for line in outside[:10]))


if __name__ == "__main__":
    main()
