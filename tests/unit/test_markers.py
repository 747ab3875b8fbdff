"""The markers pyproject.toml declares select what they say (docs/development.md, Testing: -m 'not slow')."""

import subprocess
import sys

from tests.conftest import REPO


def collected(marker: str) -> list[str]:
    answer = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:randomly",
                             "-p", "no:cacheprovider", "-m", marker, "tests/model"],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert answer.returncode in (0, 5), answer.stdout + answer.stderr  # 5: nothing collected
    return [line for line in answer.stdout.splitlines() if "::" in line]


def test_every_model_test_is_marked_model_and_the_training_runs_slow():
    assert collected("not model") == []
    assert {test.split("::")[1] for test in collected("slow")} == {
        "test_loss_decreases_on_a_few_crops", "test_train_writes_a_loadable_model_with_complete_metadata",
        "test_cross_fitting_fits_the_operating_point_on_every_non_test_case_scored_by_the_fold_model_that_did_not_see_it"}
