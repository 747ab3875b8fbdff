"""The batch client's pure parts: what counts as a scan, retries with backoff, resuming."""

import json
from pathlib import Path

import numpy as np
import pytest
import requests

from pancscan_client import submit
from tests.conftest import png_bytes
from tests.dicom_factory import ct_dataset, display_to_hu, to_bytes


class Answer:
    def __init__(self, status):
        self.status_code = status


def test_retries_back_off_on_connection_errors_and_5xx_then_give_the_answer(monkeypatch):
    slept = []
    monkeypatch.setattr(submit.time, "sleep", slept.append)
    monkeypatch.setattr(submit.random, "random", lambda: 0.5)  # the jitter's middle: a factor of 1
    answers = iter([requests.ConnectionError(), Answer(503), Answer(429), Answer(200)])

    def call():
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert submit.with_retries(call, retries=4, base_s=0.5).status_code == 200
    assert slept == [0.5, 1.0, 2.0]  # doubling after each failed try, none after the answer


@pytest.mark.parametrize("jitter, factor", [(0.0, 0.5), (0.999, 1.499)])
def test_backoff_jitter_spreads_each_delay_between_half_and_one_and_a_half_times(monkeypatch, jitter, factor):
    slept = []
    monkeypatch.setattr(submit.time, "sleep", slept.append)
    monkeypatch.setattr(submit.random, "random", lambda: jitter)
    assert submit.with_retries(lambda: Answer(503), retries=3, base_s=1.0).status_code == 503
    assert slept == pytest.approx([factor * 2**k for k in range(3)])


def test_retries_stop_at_the_limit_and_do_not_retry_client_errors(monkeypatch):
    monkeypatch.setattr(submit.time, "sleep", lambda s: None)
    calls = []
    assert submit.with_retries(lambda: calls.append(1) or Answer(400), retries=4).status_code == 400 and len(calls) == 1
    with pytest.raises(requests.ConnectionError):
        submit.with_retries(lambda: (_ for _ in ()).throw(requests.ConnectionError()), retries=2)


class TokenAnswer(Answer):
    def __init__(self, status, body):
        super().__init__(status)
        self.body, self.content, self.ok = body, b"x", status < 400

    def json(self):
        return self.body


def test_client_credentials_reuse_a_token_until_a_minute_before_it_expires(monkeypatch):
    posts, clock = [], [0.0]
    monkeypatch.setattr(submit.time, "monotonic", lambda: clock[0])

    def post(url, data, auth, timeout):
        posts.append((url, data, auth))
        return TokenAnswer(200, {"access_token": f"t{len(posts)}", "expires_in": 3600, "token_type": "Bearer"})

    monkeypatch.setattr(submit.requests, "post", post)
    credentials = submit.ClientCredentials("https://pool/oauth2/token", "id", "secret")
    client = submit.Client("https://api", credentials=credentials)
    assert client.headers == {"Authorization": "Bearer t1"} and client.headers == {"Authorization": "Bearer t1"}
    assert posts == [("https://pool/oauth2/token", {"grant_type": "client_credentials"}, ("id", "secret"))]
    clock[0] = 3540  # a minute before expiry: renewed
    assert client.headers == {"Authorization": "Bearer t2"} and len(posts) == 2


def test_a_refused_client_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(submit.requests, "post", lambda *a, **k: TokenAnswer(400, {"error": "invalid_client"}))
    with pytest.raises(RuntimeError, match="invalid_client"):
        submit.ClientCredentials("https://pool/oauth2/token", "id", "wrong").token()


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


@pytest.mark.parametrize("status, refused", [(401, True), (403, True), (404, False), (500, False)])
def test_an_api_that_refuses_the_client_is_told_apart_from_other_errors(monkeypatch, status, refused):
    answer = TokenAnswer(status, {"message": "Forbidden"})
    answer.headers = {}
    client = submit.Client("https://api", token="t", retries=0)
    monkeypatch.setattr(client.session, "request", lambda *a, **k: answer)
    with pytest.raises(RuntimeError, match=f"HTTP {status}") as caught:
        client.submit(submit.Scan(Path("s"), b"x", "scan.png", "image/png"))
    assert isinstance(caught.value, submit.ClientRefused) == refused


def test_a_client_the_token_endpoint_refuses_is_a_refusal(monkeypatch):
    monkeypatch.setattr(submit.requests, "post", lambda *a, **k: TokenAnswer(400, {"error": "invalid_client"}))
    with pytest.raises(submit.ClientRefused):
        submit.ClientCredentials("https://pool/oauth2/token", "id", "wrong").token()
