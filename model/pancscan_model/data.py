"""Data sets: the NIH Pancreas-CT slices, and the layouts users bring.

Every loader returns slices in the standard radiological orientation (anterior at the top, the
patient's right on the image's left) as display intensity 0..255 in the W400/L40 window.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from pancscan.imaging import hu_to_display
from pancscan.nifti import radiological_axial

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}
CLASS_FOLDERS = {"normal": 0, "cancer": 1}


@dataclass(frozen=True)
class CTSlice:
    """One axial slice. ``pancreas`` and ``tumour`` are boolean masks or None when unknown."""

    patient: str
    name: str
    image: np.ndarray
    pancreas: np.ndarray | None = None
    tumour: np.ndarray | None = None
    label: int | None = None


def load_nih_slices(data_dir: str | Path) -> list[CTSlice]:
    """Load ``images/PANCREAS_<patient>-<slice>.jpg`` with ``masks/`` of the same name.

    The files are stored upside down (spine at the top); they are flipped to the standard view.
    """
    data_dir = Path(data_dir)
    slices = []
    for path in sorted((data_dir / "images").glob("*.jpg")):
        match = re.fullmatch(r"(PANCREAS_\d+)-(\d+)", path.stem)
        if not match:
            continue
        image = np.asarray(Image.open(path).convert("L"), np.float32)[::-1]
        mask = np.asarray(Image.open(data_dir / "masks" / path.name).convert("L"))[::-1] >= 128
        slices.append(CTSlice(match.group(1), path.stem, np.ascontiguousarray(image), np.ascontiguousarray(mask)))
    if not slices:
        raise FileNotFoundError(f"no PANCREAS_*.jpg slices under {data_dir / 'images'}")
    return slices


def data_hash(data_dir: str | Path) -> str:
    """SHA-256 over the names and bytes of the image and mask files: which data trained a model."""
    digest = hashlib.sha256()
    data_dir = Path(data_dir)
    for path in sorted(list((data_dir / "images").glob("*")) + list((data_dir / "masks").glob("*"))):
        digest.update(f"{path.parent.name}/{path.name}".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def split_patients(patients: list[str], seed: int, val: int = 8, test: int = 8) -> dict[str, list[str]]:
    """A fixed, seeded split by patient, never by slice: slices of one patient are near-duplicates."""
    unique = sorted(set(patients))
    order = np.random.default_rng(seed).permutation(len(unique))
    shuffled = [unique[i] for i in order]
    return {
        "test": sorted(shuffled[:test]),
        "val": sorted(shuffled[test : test + val]),
        "train": sorted(shuffled[test + val :]),
    }


def load_class_folders(root: str | Path) -> list[CTSlice]:
    """A folder of class sub-folders (``normal/``, ``cancer/``), the layout of most image sets.

    Images are taken as display images already in the standard orientation; sub-folders with
    other names are ignored. Each file is its own "patient" unless named ``<patient>-<n>.*``.
    """
    root = Path(root)
    slices = []
    for folder, label in CLASS_FOLDERS.items():
        for path in sorted((root / folder).glob("*")) if (root / folder).is_dir() else []:
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            image = np.asarray(Image.open(path).convert("L"), np.float32)
            slices.append(CTSlice(path.stem.split("-")[0], path.stem, image, label=label))
    if not slices:
        raise FileNotFoundError(f"no images under {root}/normal or {root}/cancer")
    return slices


def load_msd_task07(root: str | Path, *, every: int = 1) -> list[CTSlice]:
    """Medical Segmentation Decathlon Task07 (pancreas): ``imagesTr/`` and ``labelsTr/`` NIfTI.

    Labels: 0 background, 1 pancreas, 2 tumour. Volumes are reoriented to RAS+ from their affine,
    windowed to W400/L40, and cut into axial slices that contain pancreas or tumour.
    """
    import nibabel as nib

    root = Path(root)
    slices = []
    for image_path in sorted((root / "imagesTr").glob("*.nii*")):
        if image_path.name.startswith("._"):
            continue
        label_path = root / "labelsTr" / image_path.name
        image = nib.as_closest_canonical(nib.load(image_path))
        labels = nib.as_closest_canonical(nib.load(label_path))
        hu = np.asarray(image.dataobj, np.float32)
        lab = np.rint(np.asarray(labels.dataobj)).astype(np.int16)
        case = image_path.name.split(".")[0]
        for z in range(0, hu.shape[2], every):
            lab_slice = radiological_axial(lab, z)
            if not (lab_slice > 0).any():
                continue
            tumour = lab_slice == 2
            slices.append(
                CTSlice(
                    case,
                    f"{case}-{z:03d}",
                    hu_to_display(radiological_axial(hu, z)),
                    pancreas=lab_slice > 0,
                    tumour=tumour,
                    label=int(tumour.any()),
                )
            )
    if not slices:
        raise FileNotFoundError(f"no labelled slices under {root}/imagesTr")
    return slices
