"""Builds the inference function's image contents into a folder, by following its Dockerfile.

No Docker engine runs here, so the test of the image installs its requirements into a clean
folder and runs the handler from there, with no site-packages: what the Dockerfile does not copy
or install is not there. ``python -m pancscan_local.image DIR`` (make build-inference) runs it.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from pancscan_local.template import REPO

DOCKERFILE = REPO / "functions" / "inference" / "Dockerfile"
# The Lambda Python base image ships boto3; its version as of the image this was written against.
BASE_IMAGE_PACKAGES = ["boto3==1.40.4"]


def _paths(target: Path) -> dict[str, str]:
    return {"${LAMBDA_TASK_ROOT}": str(target / "task"), "/opt/": str(target / "opt") + "/"}


def _map(path: str, target: Path) -> str:
    for name, local in _paths(target).items():
        path = path.replace(name, local)
    return path


def build(target: Path) -> dict[str, str]:
    """Fill ``target`` as the Dockerfile fills the image; returns the ENV it sets (paths mapped)."""
    if target.exists():
        shutil.rmtree(target)
    (target / "task").mkdir(parents=True)
    env: dict[str, str] = {}
    for line in DOCKERFILE.read_text().splitlines():
        words = shlex.split(line, comments=True)
        if not words:
            continue
        if words[0] == "COPY":
            *sources, dest = (_map(w, target) for w in words[1:])
            for source in sources:
                into = Path(dest) / Path(source).name if dest.endswith("/") else Path(dest)
                into.parent.mkdir(parents=True, exist_ok=True)
                copy = shutil.copytree if (REPO / source).is_dir() else shutil.copy2
                copy(REPO / source, into)
        elif words[0] == "RUN" and words[1:3] == ["pip", "install"]:
            args = [_map(w, target) for w in words[3:]]
            subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", *args,
                            *BASE_IMAGE_PACKAGES], check=True)
        elif words[0] == "ENV":
            name, _, value = words[1].partition("=")
            env[name] = _map(value, target)
    return env


if __name__ == "__main__":
    build(Path(sys.argv[1]))
