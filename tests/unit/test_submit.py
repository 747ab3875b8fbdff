"""The batch client's pure parts: what counts as a scan, retries with backoff, resuming."""

import json

import numpy as np
import pytest
import requests

from pancscan import submit
from tests.conftest import png_bytes
from tests.dicom_factory import ct_dataset, display_to_hu, to_bytes


class Answer:
    def __init__(self, status):
        self.status_code = status


def test_retries_back_off_on_connection_errors_and_5xx_then_give_the_answer(monkeypatch):
    monkeypatch.setattr(submit.time, "sleep", lambda s: None)
    answers = iter([requests.ConnectionError(), Answer(503), Answer(429), Answer(200)])

    def call():
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert submit.with_retries(call, retries=4).status_code == 200


def test_retries_stop_at_the_limit_and_do_not_retry_client_errors(monkeypatch):
    monkeypatch.setattr(submit.time, "sleep", lambda s: None)
    calls = []
    assert submit.with_retries(lambda: calls.append(1) or Answer(400), retries=4).status_code == 400 and len(calls) == 1
    with pytest.raises(requests.ConnectionError):
        submit.with_retries(lambda: (_ for _ in ()).throw(requests.ConnectionError()), retries=2)


def test_scans_are_recognised_by_content_and_a_dicom_folder_is_one_series(tmp_path):
    hu = display_to_hu(np.full((16, 16), 100))
    (tmp_path / "series").mkdir()
    for k in range(2):
        (tmp_path / "series" / f"IM{k}").write_bytes(to_bytes(ct_dataset(hu, z=k)))
    (tmp_path / "Doe_Jane.png").write_bytes(png_bytes(np.zeros((8, 8))))
    (tmp_path / "readme.txt").write_text("x")
    scans, skipped = submit.collect([tmp_path])
    assert sorted((s.path.name, s.content_type) for s in scans) == [("Doe_Jane.png", "image/png"), ("series", "application/zip")]
    assert all(s.filename.startswith("scan.") for s in scans)  # never the user's file name
    assert [p.name for p in skipped] == ["readme.txt"]


def test_a_rerun_skips_content_with_a_final_result_even_after_an_interrupted_line(tmp_path):
    results = tmp_path / "results.jsonl"
    results.write_text(json.dumps({"path": "a", "sha256": "h1", "status": "complete"}) + "\n"
                       + json.dumps({"path": "b", "sha256": "h2", "status": "error"}) + "\n" + '{"path": "c", "sha')
    assert submit.load_done(results) == {"h1"}
