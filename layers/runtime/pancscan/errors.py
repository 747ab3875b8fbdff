"""The one error type for input PancScan will not score, with stable reason codes."""

from __future__ import annotations

# Stable codes: clients, the site and the API documentation depend on them.
REASON_CODES = {
    "unreadable_file": "The file could not be read as a supported image, DICOM, zip or NIfTI file.",
    "too_large": "The file, image, archive or series is larger than PancScan accepts.",
    "not_abdominal_ct": "The image does not look like an axial abdominal CT slice.",
    "unsupported_modality": "Not CT (for example MR): PancScan's model was trained on CT only.",
    "not_axial": "The slices are not axial; PancScan reads axial CT slices only.",
    "too_many_series": "The upload holds more than one series; send one series per upload.",
    "empty_series": "The upload holds no CT slice that can be read.",
}


# Codes of scans that ended ``failed``: our fault or the upload's disappearance, not the file's.
FAILURE_CODES = {
    "upload_missing": "The uploaded file was not found; upload it again.",
    "processing_error": "PancScan could not process this scan; try again later.",
}


class ScanRejected(Exception):
    """Bad input: an answer with a reason code, never a crash."""

    def __init__(self, code: str, message: str):
        if code not in REASON_CODES:
            raise ValueError(f"unknown reason code {code!r}")
        super().__init__(message)
        self.code = code
        self.message = message

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}
