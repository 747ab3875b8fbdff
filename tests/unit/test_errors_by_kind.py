"""Errors by kind: sensitivity by the tumour's place, false alarms by where the heatmap's maximum lies."""

import pytest

from pancscan_model.evaluate import errors_by_kind, score_rows


def rows() -> list[dict]:
    # four tumour slices of two cases: found in the head (twice), missed in the tail and the body
    tumour = score_rows("tumour", ["C1", "C1", "C2", "C2"], ["a", "b", "c", "d"], [1] * 4, [0.9, 0.7, 0.2, 0.5], [0] * 4,
                        place=["head", "head", "tail", "body"], peak_on_tumour=[1, 1, 0, 0])
    # their erased twins: one flagged with its peak where the tumour was, one flagged elsewhere
    erased = score_rows("erased", ["C1", "C1", "C2", "C2"], ["a", "b", "c", "d"], [0] * 4, [0.8, 0.1, 0.65, 0.1], [0] * 4,
                        place=["head", "head", "tail", "body"], peak_on_tumour=[1, 1, 0, 1])
    # five normal slices of two patients: two false alarms, in the tail and outside the pancreas
    normal = score_rows("normal", ["P1", "P1", "P1", "P2", "P2"], list("vwxyz"), [0] * 5, [0.1, 0.7, 0.2, 0.95, 0.3],
                        [0] * 5, place=["head", "tail", "body", "outside the pancreas", "tail"])
    return tumour + erased + normal


def test_sensitivity_is_counted_by_the_tumours_place():
    kinds = errors_by_kind(rows(), threshold=0.6)
    by_place = kinds["sensitivity_by_place"]
    assert {name: (v["n"], v["value"]) for name, v in by_place.items()} == {"head": (2, 1.0), "body": (1, 0.0), "tail": (1, 0.0)}
    assert tuple(by_place["head"]["ci95"]) == (1.0, 1.0)
    assert kinds["definition"].startswith("Where on a slice a tumour or a false alarm lies")


def test_a_probability_at_the_threshold_counts_as_found_and_as_a_false_alarm():
    kinds = errors_by_kind(rows(), threshold=0.7)
    assert kinds["sensitivity_by_place"]["head"]["value"] == 1.0
    assert kinds["false_alarms_on_normal_slices"]["tail"]["called"] == 1


def test_false_alarms_are_shares_of_all_normal_slices_and_of_all_erased_twins_by_where_their_peak_lies():
    kinds = errors_by_kind(rows(), threshold=0.6)
    normal = kinds["false_alarms_on_normal_slices"]
    assert {name: (v["called"], v["of"], v["value"]) for name, v in normal.items()} == {
        "head": (0, 5, 0.0), "body": (0, 5, 0.0), "tail": (1, 5, pytest.approx(0.2)), "outside the pancreas": (1, 5, pytest.approx(0.2))}
    twins = kinds["false_alarms_on_erased_twins"]
    assert {name: (v["called"], v["of"], v["value"]) for name, v in twins.items()} == {
        "at the erased tumour": (1, 4, 0.25), "elsewhere": (1, 4, 0.25)}
    assert 0.0 <= twins["elsewhere"]["ci95"][0] <= 0.25 <= twins["elsewhere"]["ci95"][1] <= 0.5


def test_a_threshold_chosen_on_one_folds_patients_is_judged_on_the_other_folds():
    from pancscan_model.data import Splits
    from pancscan_model.evaluate import threshold_by_fold

    normal = score_rows("normal", ["P1"] * 20 + ["P2"] * 20, range(40), [0] * 40,
                        [k / 20 for k in range(20)] + [0.5 + k / 40 for k in range(20)], [0] * 40)
    tumour = score_rows("tumour", ["C1", "C2"], ["a", "b"], [1, 1], [0.97, 0.99], [0, 0])
    splits = Splits({"train": ["C1", "C2"], "val": [], "test": []}, {"train": ["P1", "P2"], "val": [], "test": []},
                    {"msd": [["C1"], ["C2"]], "nih": [["P1"], ["P2"]]})

    first, second = threshold_by_fold(normal + tumour, splits, specificity=0.95)

    # fold 1's 20 normal slices at 0, 0.05 ... 0.95: one may lie above, so the threshold lies just above 0.9
    assert first["threshold"] == pytest.approx(0.9) and first["threshold"] > 0.9
    assert (first["patients"], first["normal_slices"]) == (1, 20)
    assert first["other_folds_specificity"] == pytest.approx(17 / 20)  # P2's 0.5 ... 0.875 of 0.5 ... 0.975
    assert first["other_folds_sensitivity"] == 1.0  # C2's 0.99
    assert second["threshold"] == pytest.approx(0.95) and second["other_folds_specificity"] == 1.0
    assert second["other_folds_sensitivity"] == 1.0


def test_held_out_figures_need_the_tumour_slices_and_a_fold_needs_held_out_figures(tmp_path):
    from pancscan_model.evaluate import evaluate

    for arguments in ({"held_out": True}, {"fold": 1}, {"msd_dir": tmp_path, "fold": 1}):
        with pytest.raises(SystemExit, match="--held-out needs --msd, and --fold needs --held-out"):
            evaluate(tmp_path, out_dir=tmp_path / "out", **arguments)
    assert not (tmp_path / "out").exists()


def test_a_false_alarm_on_a_slice_without_a_pancreas_mask_is_counted_as_unknown():
    unknown = score_rows("normal", ["P3"], ["u"], [0], [0.9], [0], place=["unknown"])
    assert errors_by_kind(rows() + unknown, threshold=0.5)["false_alarms_on_normal_slices"]["unknown"] | {"ci95": None} == {
        "called": 1, "of": 6, "value": pytest.approx(1 / 6), "ci95": None}
    assert "unknown" not in errors_by_kind(rows(), threshold=0.5)["false_alarms_on_normal_slices"]
