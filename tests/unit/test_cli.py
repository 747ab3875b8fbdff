"""`pancscan predict` through its real entry point, with the shipped model."""

import json
import subprocess
import sys

import numpy as np
import pytest

from pancscan_cli.main import main
from tests.conftest import png_bytes

FIELDS = {"path", "status", "label", "probability", "confidence", "threshold", "model_version", "reason"}


def run_json(capsys, *paths) -> list[dict]:
    assert main(["predict", "--json", *map(str, paths)]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_bad_files_are_rejected_lines_with_reason_codes_not_tracebacks(tmp_path, capsys):
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 50)
    noise = tmp_path / "noise.png"
    noise.write_bytes(png_bytes(np.random.default_rng(0).integers(0, 256, (256, 256))))
    lines = run_json(capsys, garbage, noise, tmp_path / "missing.jpg")
    assert [line["status"] for line in lines] == ["rejected"] * 3
    assert [line["reason"]["code"] for line in lines] == ["unreadable_file", "not_abdominal_ct", "unreadable_file"]
    for line in lines:
        assert set(line) >= FIELDS
        assert line["label"] is None and line["probability"] is None
        assert line["reason"]["message"]


def test_colour_photo_is_rejected_as_not_abdominal_ct(tmp_path, capsys):
    rgb = np.zeros((300, 400, 3), np.uint8)
    rgb[..., 0] = np.linspace(0, 255, 400)[None, :]
    rgb[..., 1] = 120
    path = tmp_path / "photo.png"
    path.write_bytes(png_bytes(rgb))
    (line,) = run_json(capsys, path)
    assert line["reason"]["code"] == "not_abdominal_ct"


def test_misuse_without_paths_exits_with_usage_error():
    with pytest.raises(SystemExit) as exc:
        main(["predict", "--json"])
    assert exc.value.code == 2


def test_console_script_runs_as_a_separate_process(tmp_path):
    path = tmp_path / "blank.png"
    path.write_bytes(png_bytes(np.zeros((64, 64))))
    done = subprocess.run([sys.executable, "-m", "pancscan_cli.main", "predict", "--json", str(path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "rejected"
    assert "Traceback" not in done.stderr


def test_runtime_path_never_imports_tensorflow(tmp_path):
    path = tmp_path / "blank.png"
    path.write_bytes(png_bytes(np.zeros((64, 64))))
    code = (
        "import sys; from pancscan_cli.main import main; main(['predict', '--json', sys.argv[1]]); "
        "assert 'ai_edge_litert' in sys.modules, 'the model was not loaded'; "
        "assert not any(m == 'tensorflow' or m.startswith(('tensorflow.', 'keras')) for m in sys.modules), 'TF imported'"
    )
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
