"""Loaders for the layouts users bring, on small files made here."""

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from pancscan_model.data import load_class_folders, load_msd_task07, split_patients


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
