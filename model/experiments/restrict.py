"""The held-out figures of a kept experiment restricted to another model's cases and patients: two
models compared on the same slices.

    python model/experiments/restrict.py model/experiments/cross-fitted-3-folds/scores.csv \
        --split-of model/pancscan.json --part val --out model/experiments/cross-fitted-3-folds-on-0.2.1-validation
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pancscan_model.evaluate import read_scores, real_figures, write_scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scores", type=Path, help="scores.csv of `pancscan evaluate --held-out`")
    parser.add_argument("--split-of", type=Path, required=True, help="a model's metadata (pancscan.json) with the cases to keep")
    parser.add_argument("--part", default="val", help="which part of that split (train, val, test)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    split = json.loads(args.split_of.read_text())["split"]
    keep = set(split["msd"][args.part]) | set(split["nih"][args.part])
    rows = [row for row in read_scores(args.scores) if row["group"] in keep]
    source = json.loads(args.scores.with_name("report.json").read_text())
    report = {"model_version": source["model_version"], "threshold": source["threshold"],
              "note": f"{source['note']} Restricted to the {args.part} cases and patients of {args.split_of}.",
              **real_figures(rows, source["threshold"])}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    write_scores(rows, args.out / "scores.csv")


if __name__ == "__main__":
    main()
