"""Reading the members of an uploaded zip safely: every limit is checked from the central
directory before anything is decompressed, and again while decompressing."""

from __future__ import annotations

import io
import stat
import zipfile
from pathlib import Path

from pancscan.errors import ScanRejected

MAX_MEMBERS = 2000
MAX_MEMBER_BYTES = 64 * 1024 * 1024
MAX_TOTAL_BYTES = 1024 * 1024 * 1024
MAX_RATIO = 200  # DICOM compresses a few times; a zip bomb a thousand times
IGNORED = ("__MACOSX/", ".DS_Store", "DICOMDIR", "Thumbs.db")


def zip_folder(folder: Path, max_bytes: int) -> bytes:
    """The regular files under ``folder`` as one zip (a DICOM series goes through the same checks
    as an uploaded zip). Raises ScanRejected("too_large") over ``max_bytes``."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink())
    if sum(p.stat().st_size for p in files) > max_bytes:
        raise ScanRejected("too_large", f"The folder holds over {max_bytes // 2**20} MB.")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in files:
            archive.write(path, path.relative_to(folder).as_posix())
    return buffer.getvalue()


def _unsafe_name(name: str) -> bool:
    parts = name.replace("\\", "/").split("/")
    return not name or name.startswith(("/", "\\")) or ".." in parts or (len(name) > 1 and name[1] == ":")


def zip_entries(data: bytes) -> tuple[zipfile.ZipFile, list[zipfile.ZipInfo]]:
    """The zip and its regular files (less what exporters add: macOS folders, DICOMDIR...), every
    limit checked from the central directory first. Raises ScanRejected for anything unsafe."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = [i for i in archive.infolist() if not i.filename.endswith("/")]  # (is_dir() fails on an empty name)
    except Exception as exc:  # zipfile raises many types on a damaged central directory (found by fuzzing)
        raise ScanRejected("unreadable_file", "The zip file is damaged.") from exc
    if len(infos) > MAX_MEMBERS:
        raise ScanRejected("too_large", f"The zip holds {len(infos)} files; the limit is {MAX_MEMBERS}.")
    total = 0
    for info in infos:
        if _unsafe_name(info.filename):
            raise ScanRejected("unreadable_file", "The zip holds a file with an unsafe path (absolute or '..').")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise ScanRejected("unreadable_file", "The zip holds a symbolic link.")
        if info.file_size > MAX_MEMBER_BYTES:
            raise ScanRejected("too_large", f"A file in the zip is over {MAX_MEMBER_BYTES // 2**20} MB.")
        if info.file_size > MAX_RATIO * max(info.compress_size, 1) and info.file_size > 1024 * 1024:
            raise ScanRejected("too_large", "The zip's compression ratio is implausible for images (a zip bomb?).")
        total += info.file_size
    if total > MAX_TOTAL_BYTES:
        raise ScanRejected("too_large", f"The zip expands to over {MAX_TOTAL_BYTES // 2**20} MB.")
    return archive, [info for info in infos if not any(part in info.filename for part in IGNORED)]


def read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, first: int = -1) -> bytes:
    """The member's bytes (only its ``first`` bytes when given: a DICOM header without its pixels)."""
    try:
        with archive.open(info) as member:
            # zipfile stops at the declared size and then checks the CRC: a file larger than it
            # declares is never read past that size, and fails here
            return member.read(first)
    except Exception as exc:  # BadZipFile, zlib.error, struct.error, NotImplementedError (encrypted)...
        raise ScanRejected("unreadable_file", "A file in the zip could not be extracted (damaged or encrypted).") from exc
