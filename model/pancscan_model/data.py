"""Data sets: the NIH Pancreas-CT slices (normal pancreases), the MSD Task07 tumour slices (real
pancreatic tumours), and the layouts users bring.

Every loader returns slices in the standard radiological orientation (anterior at the top, the
patient's right on the image's left) as grey = Hounsfield units clipped to 0..255.
"""

from __future__ import annotations

import csv
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from pancscan.reading.imaging import hu_to_display
from pancscan.reading.nifti import radiological_axial

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}
SATURATED = 250  # grey levels: bone, contrast (HU clipped to 0..255)
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


def _grey(path: Path) -> np.ndarray:
    """A stored slice (spine at the top) in the radiological view, as float32 0..255."""
    return np.ascontiguousarray(np.asarray(Image.open(path).convert("L"), np.float32)[::-1])


def _mask(path: Path) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(Image.open(path).convert("L"))[::-1] >= 128)  # JPEG masks: threshold at 128


def load_nih_slices(data_dir: str | Path) -> list[CTSlice]:
    """``images/PANCREAS_<patient>-<slice>.jpg`` with ``masks/`` of the same name: normal pancreases."""
    data_dir = Path(data_dir)
    slices = []
    for path in sorted((data_dir / "images").glob("*.jpg")):
        match = re.fullmatch(r"(PANCREAS_\d+)-(\d+)", path.stem)
        if match:
            slices.append(CTSlice(match.group(1), path.stem, _grey(path), _mask(data_dir / "masks" / path.name), label=0))
    if not slices:
        raise FileNotFoundError(f"no PANCREAS_*.jpg slices under {data_dir / 'images'}")
    return slices


def intensities_recovered(image: np.ndarray) -> bool:
    """False for a slice whose HU recovery failed: more than half of the body at 255 (in two MSD cases,
    C241 and C273, the whole body is white; on real slices of either set at most 12% is)."""
    body = image[image > 0]
    return body.size > 0 and float(np.mean(body >= SATURATED)) < 0.5


def load_msd_slices(data_dir: str | Path) -> list[CTSlice]:
    """``images/MSD_<case>-<k>.jpg`` with ``tumour_masks/``: real pancreatic tumours (no pancreas mask).

    Slices of a case keep their order (k), so adjacent slices stay neighbours; ``patient`` is the case.
    Slices whose intensities were not recovered (``intensities_recovered``) are left out."""
    data_dir = Path(data_dir)
    with (data_dir / "slices.csv").open() as listing:
        rows = sorted(csv.DictReader(listing), key=lambda row: (row["case"], row["file"]))
    slices = [CTSlice(row["case"], Path(row["file"]).stem, _grey(data_dir / "images" / row["file"]), None,
                      _mask(data_dir / "tumour_masks" / row["file"]), label=1) for row in rows]
    slices = [s for s in slices if intensities_recovered(s.image)]
    if not slices:
        raise FileNotFoundError(f"no slices listed in {data_dir / 'slices.csv'}")
    return slices


def data_hash(*data_dirs: str | Path) -> str:
    """SHA-256 over the names and bytes of every file of the data folders: which data trained a model."""
    digest = hashlib.sha256()
    for data_dir in map(Path, data_dirs):
        for path in sorted(p for p in data_dir.rglob("*") if p.is_file() and p.name != "README.md"):
            digest.update(path.relative_to(data_dir).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def split_patients(patients: list[str], seed: int, val: int | float = 8, test: int | float = 8) -> dict[str, list[str]]:
    """A fixed, seeded split by patient (or case), never by slice: slices of one patient are
    near-duplicates. ``val`` and ``test`` are counts, or fractions of the patients when below 1."""
    unique = sorted(set(patients))
    n_test, n_val = (round(n * len(unique)) if n < 1 else int(n) for n in (test, val))
    order = np.random.default_rng(seed).permutation(len(unique))
    shuffled = [unique[i] for i in order]
    return {
        "test": sorted(shuffled[:n_test]),
        "val": sorted(shuffled[n_test : n_test + n_val]),
        "train": sorted(shuffled[n_test + n_val :]),
    }


@dataclass(frozen=True)
class Splits:
    """Case (MSD) and patient (NIH) ids of each part: train, val, test. Slices follow their case.

    Cross-fitted (``folds``): every non-test case and patient is in "train" (the shipped model's),
    and each fold model holds out its fold's."""

    msd: dict[str, list[str]]
    nih: dict[str, list[str]]
    folds: dict[str, list[list[str]]] = field(default_factory=dict)

    def slices(self, part: str, msd: list[CTSlice], nih: list[CTSlice]) -> tuple[list[CTSlice], list[CTSlice]]:
        keep_msd, keep_nih = set(self.msd[part]), set(self.nih[part])
        return [s for s in msd if s.patient in keep_msd], [s for s in nih if s.patient in keep_nih]

    def cross_fitted(self, k: int, seed: int) -> Splits:
        """The non-test cases and patients in K folds (by case and patient, never by slice): fold i
        holds out every K-th of a seeded order. The test part stays as it is."""
        def parts(split: dict[str, list[str]]) -> tuple[dict[str, list[str]], list[list[str]]]:
            pool = sorted(split["train"] + split["val"])
            order = [pool[i] for i in np.random.default_rng(seed).permutation(len(pool))]
            return {"train": pool, "val": [], "test": split["test"]}, [sorted(order[i::k]) for i in range(k)]

        (msd, msd_folds), (nih, nih_folds) = parts(self.msd), parts(self.nih)
        return Splits(msd, nih, {"msd": msd_folds, "nih": nih_folds})

    def fold_splits(self) -> list[Splits]:
        """Each fold as a split: its held-out cases and patients as "val", the other folds' as "train"."""
        def fold(split: dict[str, list[str]], out: list[str]) -> dict[str, list[str]]:
            return {"train": sorted(set(split["train"]) - set(out)), "val": out, "test": split["test"]}

        return [Splits(fold(self.msd, m), fold(self.nih, n)) for m, n in zip(self.folds.get("msd", []), self.folds.get("nih", []))]

    def as_json(self) -> dict:
        return {"msd": self.msd, "nih": self.nih} | ({"folds": self.folds} if self.folds else {})

    @classmethod
    def from_json(cls, split: dict) -> Splits:
        return cls(split["msd"], split["nih"], split.get("folds", {}))


def make_splits(msd: list[CTSlice], nih: list[CTSlice], seed: int, msd_val: float, msd_test: float,
                nih_val: int, nih_test: int) -> Splits:
    return Splits(split_patients([s.patient for s in msd], seed, msd_val, msd_test),
                  split_patients([s.patient for s in nih], seed, nih_val, nih_test))


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
    converted to HU clipped to 0..255, and cut into axial slices that contain pancreas or tumour.
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
