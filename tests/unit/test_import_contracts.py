"""The layout's rules (pyproject.toml, [tool.importlinter]) hold, and each one fails when a
forbidden import is added: checked on a copy of the packages, with the real lint-imports."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# where each top-level package lives (its parent folder goes on the path)
PACKAGES = {"pancscan": "layers/runtime", "pancscan_model": "model", "pancscan_local": "infra",
            "pancscan_client": "client", "pancscan_cli": "cli", "functions": "."}


def lint_imports(root: Path, contract: str | None = None) -> subprocess.CompletedProcess:
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or "lint-imports"
    command = [lint, "--no-cache", str(REPO / "pyproject.toml")] + (["--contract", contract] if contract else [])
    path = ":".join(str(root / folder) for folder in PACKAGES.values())
    return subprocess.run(command, cwd=root, capture_output=True, text=True, env={"PYTHONPATH": path, "PATH": ""}, timeout=300)


@pytest.fixture
def copy(tmp_path) -> Path:
    for package, folder in PACKAGES.items():
        shutil.copytree(REPO / folder / package, tmp_path / folder / package, ignore=shutil.ignore_patterns("__pycache__", "*.tflite"))
    return tmp_path


def add_import(module: Path, statement: str) -> None:
    module.write_text(module.read_text() + f"\n\ndef _forbidden():\n    {statement}\n")


def test_the_repository_keeps_every_contract():
    done = lint_imports(REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "4 kept, 0 broken" in done.stdout


@pytest.mark.parametrize("contract,module,statement", [
    ("runtime", "layers/runtime/pancscan/detection/predict.py", "import pancscan_model.train"),
    ("runtime", "layers/runtime/pancscan/service/scans.py", "from pancscan_local import stack"),
    ("runtime", "layers/runtime/pancscan/reading/dicom.py", "import pancscan_cli.main"),
    ("runtime", "layers/runtime/pancscan/detection/model.py", "import tensorflow"),
    ("functions", "functions/api/app.py", "import pancscan_local.auth"),
    ("functions", "functions/inference/app.py", "import pancscan_model.evaluate"),
    ("stack-and-training", "infra/pancscan_local/stack.py", "import pancscan_model.metrics"),
    ("stack-and-training", "model/pancscan_model/metrics.py", "import pancscan_local.template"),
    ("client", "client/pancscan_client/submit.py", "import pancscan_cli.main"),
])
def test_each_contract_fails_when_a_forbidden_import_is_added(copy, contract, module, statement):
    assert lint_imports(copy, contract).returncode == 0  # the copy keeps it as it is
    add_import(copy / module, statement)
    done = lint_imports(copy, contract)
    assert done.returncode == 1, done.stdout
    assert "BROKEN" in done.stdout and statement.split()[1].split(".")[0] in done.stdout
