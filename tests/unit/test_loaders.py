"""Loaders for the shared data sets and the layouts users bring, on small files made here, and the
split by case and patient."""

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from pancscan_model.data import (load_class_folders, load_msd_slices, load_msd_task07, load_nih_slices, make_splits,
                                 split_patients)


def test_class_folders_give_labels_from_folder_names(tmp_path):
    for folder, count in {"normal": 3, "cancer": 2, "notes": 1}.items():
        (tmp_path / folder).mkdir()
        for i in range(count):
            Image.fromarray(np.full((32, 32), 10 * i, np.uint8)).save(tmp_path / folder / f"case{i}-{i}.png")
    (tmp_path / "normal" / "readme.txt").write_text("not an image")
    slices = load_class_folders(tmp_path)
    assert sorted(s.label for s in slices) == [0, 0, 0, 1, 1]
    assert all(s.image.shape == (32, 32) for s in slices)


def test_class_folders_without_images_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_class_folders(tmp_path)


def _write_msd_case(root, name, affine):
    """A 40x30x5 volume: a bright marker at the patient's right-anterior corner, tumour label 2."""
    canonical = np.full((40, 30, 5), -1000.0, np.float32)
    canonical[35:40, 25:30, :] = 300.0  # RAS+: high x = patient's right, high y = anterior
    labels_canonical = np.zeros((40, 30, 5), np.uint8)
    labels_canonical[10:20, 10:20, 2] = 1
    labels_canonical[12:15, 12:15, 2] = 2
    # store the data in the orientation the affine describes
    flips = [axis for axis in range(3) if affine[axis, axis] < 0]
    hu = np.flip(canonical, axis=flips) if flips else canonical
    labels = np.flip(labels_canonical, axis=flips) if flips else labels_canonical
    (root / "imagesTr").mkdir(exist_ok=True)
    (root / "labelsTr").mkdir(exist_ok=True)
    nib.save(nib.Nifti1Image(hu, affine), root / "imagesTr" / name)
    nib.save(nib.Nifti1Image(labels, affine), root / "labelsTr" / name)


@pytest.mark.parametrize(
    "affine",
    [np.diag([1.0, 1.0, 2.5, 1.0]), np.diag([-0.8, -0.8, 2.5, 1.0])],  # RAS and LPS storage
    ids=["ras", "lps"],
)
def test_msd_volumes_are_cut_into_radiological_axial_slices(tmp_path, affine):
    _write_msd_case(tmp_path, "pancreas_001.nii.gz", affine)
    slices = load_msd_task07(tmp_path)
    assert len(slices) == 1  # only the slice with labels
    item = slices[0]
    assert item.label == 1 and item.tumour.sum() == 9 and item.pancreas.sum() == 100
    # anterior at the top and the patient's right on the image's left: the marker is top-left
    assert item.image.shape == (30, 40)
    assert item.image[:5, :5].min() == 255.0 and item.image[-5:, -5:].max() == 0.0


def test_patient_split_is_disjoint_seeded_and_complete():
    patients = [f"P{i:02d}" for i in range(47) for _ in range(3)]
    a, b = split_patients(patients, seed=1), split_patients(patients, seed=1)
    assert a == b
    assert len(a["test"]) == len(a["val"]) == 8 and len(a["train"]) == 31
    assert not set(a["train"]) & set(a["val"]) and not set(a["train"]) & set(a["test"])
    assert split_patients(patients, seed=2) != a


def _stored(path, array):
    """As the shared slices are stored: an RGB JPEG with equal channels, spine at the top."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.stack([array[::-1]] * 3, axis=2).astype(np.uint8)).save(path, quality=95)


def _slice_with_marker(value: int) -> np.ndarray:
    """A radiological-view slice: bright marker top-left (anterior, patient's right), a square of ``value``."""
    image = np.zeros((64, 64), np.uint8)
    image[:8, :8] = 250
    image[30:40, 30:40] = value
    return image


def test_nih_slices_load_in_the_radiological_view_with_their_pancreas(tmp_path):
    mask = np.zeros((64, 64), np.uint8)
    mask[30:40, 30:40] = 255
    for name in ("PANCREAS_0003-001", "PANCREAS_0003-002", "PANCREAS_0010-001"):
        _stored(tmp_path / "images" / f"{name}.jpg", _slice_with_marker(98))
        _stored(tmp_path / "masks" / f"{name}.jpg", mask)
    (tmp_path / "images" / "README.txt").write_text("not a slice")

    slices = load_nih_slices(tmp_path)

    assert [s.patient for s in slices] == ["PANCREAS_0003", "PANCREAS_0003", "PANCREAS_0010"]
    item = slices[0]
    assert item.label == 0 and item.tumour is None
    assert item.image[:8, :8].min() > 240 and abs(item.image[35, 35] - 98) <= 3  # grey = HU, as stored
    assert item.pancreas.sum() == 100 and item.pancreas[35, 35]


def test_msd_slices_load_by_case_with_their_tumour_masks(tmp_path):
    tumour = np.zeros((64, 64), np.uint8)
    tumour[32:36, 32:38] = 255
    rows = ["file,case,tumour_px,hu_per_source_level"]
    for name, case in (("MSD_C071-001.jpg", "C071"), ("MSD_C070-000.jpg", "C070"), ("MSD_C071-000.jpg", "C071")):
        _stored(tmp_path / "images" / name, _slice_with_marker(70))
        _stored(tmp_path / "tumour_masks" / name, tumour)
        rows.append(f"{name},{case},24,9.1")
    (tmp_path / "slices.csv").write_text("\n".join(rows) + "\n")

    slices = load_msd_slices(tmp_path)

    assert [(s.patient, s.name) for s in slices] == [("C070", "MSD_C070-000"), ("C071", "MSD_C071-000"), ("C071", "MSD_C071-001")]
    item = slices[0]
    assert item.label == 1 and item.pancreas is None
    assert item.tumour.sum() == 24 and item.tumour[33, 33]
    assert item.image[:8, :8].min() > 240  # flipped to the radiological view


def test_the_split_puts_every_case_and_patient_in_exactly_one_part():
    from pancscan_model.data import CTSlice

    msd = [CTSlice(f"C{c:03d}", f"MSD_C{c:03d}-{k}", np.zeros((2, 2))) for c in range(70, 280) for k in range(c % 4 + 1)]
    nih = [CTSlice(f"PANCREAS_{p:04d}", f"PANCREAS_{p:04d}-{k}", np.zeros((2, 2))) for p in range(1, 48) for k in range(3)]
    splits = make_splits(msd, nih, seed=5, msd_val=0.15, msd_test=0.2, nih_val=9, nih_test=10)

    for collection, slices in ((splits.msd, msd), (splits.nih, nih)):
        parts = [set(collection[part]) for part in ("train", "val", "test")]
        assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
        assert set().union(*parts) == {s.patient for s in slices}
    assert (len(splits.msd["test"]), len(splits.msd["val"])) == (42, 32)
    assert (len(splits.nih["test"]), len(splits.nih["val"])) == (10, 9)
    train_msd, train_nih = splits.slices("train", msd, nih)
    test_msd, _ = splits.slices("test", msd, nih)
    assert not {s.patient for s in train_msd} & {s.patient for s in test_msd}
    assert len(train_msd) + len(test_msd) + len(splits.slices("val", msd, nih)[0]) == len(msd)


def test_cross_fitting_puts_every_non_test_case_in_exactly_one_fold_and_keeps_the_test_part():
    from pancscan_model.data import CTSlice, Splits

    msd = [CTSlice(f"C{c:03d}", f"MSD_C{c:03d}-0", np.zeros((2, 2))) for c in range(70, 280)]
    nih = [CTSlice(f"PANCREAS_{p:04d}", f"PANCREAS_{p:04d}-0", np.zeros((2, 2))) for p in range(1, 48)]
    splits = make_splits(msd, nih, seed=5, msd_val=0.15, msd_test=0.2, nih_val=9, nih_test=10)

    crossed = splits.cross_fitted(3, seed=5)

    assert crossed.cross_fitted(3, seed=5) == crossed and crossed.cross_fitted(3, seed=6) != crossed
    assert Splits.from_json(crossed.as_json()) == crossed and "folds" not in splits.as_json()
    for collection in ("msd", "nih"):
        before, after = getattr(splits, collection), getattr(crossed, collection)
        assert after == {"train": sorted(before["train"] + before["val"]), "val": [], "test": before["test"]}
        folds = crossed.folds[collection]
        assert sorted(c for fold in folds for c in fold) == after["train"] and max(map(len, folds)) - min(map(len, folds)) <= 1
    assert [len(f) for f in crossed.folds["nih"]] == [13, 12, 12]
    for fold, held_msd, held_nih in zip(crossed.fold_splits(), crossed.folds["msd"], crossed.folds["nih"]):
        assert (fold.msd["val"], fold.nih["val"]) == (held_msd, held_nih)
        assert fold.msd["train"] == sorted(set(crossed.msd["train"]) - set(held_msd)) and fold.nih["test"] == splits.nih["test"]
    assert splits.fold_splits() == []
