"""AuthMode jwt on the local stack (`pancscan serve --auth`): hospital clients with access tokens only.

The gateway checks tokens as API Gateway's JWT authorizer does (pancscan_local.auth); the user pool
and its app clients live in moto's cognito-idp, created as template.yaml and the runbook create them.
"""

import json
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa

from pancscan_cli.main import main
from pancscan_local.process import served_stack

SCAN = {"filename": "scan", "content_type": "image/jpeg", "size": 1000}


def token(stack, client_id, secret, scope=None):
    form = {"grant_type": "client_credentials"} | ({"scope": scope} if scope else {})
    answer = requests.post(stack["token_url"], data=form, auth=(client_id, secret))
    assert answer.status_code == 200, answer.text
    return answer.json()["access_token"]


def bearer(value):
    return {"Authorization": f"Bearer {value}"}


@pytest.fixture(scope="module")
def auth_stack(tmp_path_factory):
    log = tmp_path_factory.mktemp("auth-stack") / "serve.log"
    with served_stack(log, options=("--auth",)) as served:
        deadline = time.monotonic() + 30
        while not (found := re.search(r"user pool (\S+).*PANCSCAN_TOKEN_URL=(\S+) PANCSCAN_CLIENT_ID=(\S+) PANCSCAN_CLIENT_SECRET=(\S+)",
                                      log.read_text(), re.S)):
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        pool, token_url, client_id, secret = found.groups()
        yield {"url": served.url, "aws": served.aws_endpoint, "pool": pool, "token_url": token_url,
               "client_id": client_id, "secret": secret, "log": log}


def test_without_a_valid_token_every_scan_route_is_refused(auth_stack):
    url = auth_stack["url"]
    scan_url = f"{url}/v1/scans/{uuid.uuid4()}"
    foreign_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = int(time.time())
    forged = jwt.encode({"iss": auth_stack["token_url"].rsplit("/oauth2", 1)[0], "client_id": auth_stack["client_id"],
                         "scope": "pancscan/submit pancscan/read", "exp": now + 600, "iat": now}, foreign_key, algorithm="RS256",
                        headers={"kid": "not-theirs"})
    for headers in ({}, bearer("not-a-jwt"), bearer(forged), {"Authorization": "Basic dXNlcjpwYXNz"}):
        assert requests.post(f"{url}/v1/scans", json=SCAN, headers=headers).status_code == 401
        assert requests.get(scan_url, headers=headers).status_code == 401
        answer = requests.delete(scan_url, headers=headers)
        assert answer.status_code == 401 and answer.json() == {"message": "Unauthorized"}
        assert 'error="invalid_token"' in answer.headers["www-authenticate"]
    # a valid token without the route's scope: 403
    submit_only = token(auth_stack, auth_stack["client_id"], auth_stack["secret"], scope="pancscan/submit")
    answer = requests.get(scan_url, headers=bearer(submit_only))
    assert answer.status_code == 403 and 'error="insufficient_scope"' in answer.headers["www-authenticate"]
    assert requests.post(f"{url}/v1/scans", json=SCAN, headers=bearer(submit_only)).status_code == 201
    # a wrong secret gets no token at all
    refused = requests.post(auth_stack["token_url"], data={"grant_type": "client_credentials"}, auth=(auth_stack["client_id"], "wrong"))
    assert refused.status_code == 400 and refused.json() == {"error": "invalid_client"}
    # what stays public
    assert requests.get(f"{url}/v1/health").status_code == 200
    document = requests.get(f"{url}/v1/openapi.json").json()
    scheme = document["components"]["securitySchemes"]["hospitalClient"]
    assert scheme["flows"]["clientCredentials"]["tokenUrl"] == auth_stack["token_url"]
    assert document["paths"]["/v1/scans"]["post"]["security"] == [{"hospitalClient": ["pancscan/submit"]}]
    read = document["paths"]["/v1/scans/{scan_id}"]["get"]
    assert read["security"] == [{"hospitalClient": ["pancscan/read"]}]
    assert "x-scan-token" not in json.dumps(read) and "www-authenticate" in read["responses"]["401"]["headers"]


def test_the_batch_client_gets_its_tokens_and_only_its_hospital_reads_its_scans(auth_stack, nih_dir, tmp_path, capsys, monkeypatch):
    scans = tmp_path / "scans"
    scans.mkdir()
    for path in sorted((nih_dir / "images").glob("*.jpg"))[:2]:
        (scans / path.name).write_bytes(path.read_bytes())
    out = tmp_path / "out"
    monkeypatch.setenv("PANCSCAN_CLIENT_SECRET", auth_stack["secret"])
    assert main(["submit", "--api", auth_stack["url"], "--out", str(out), "--client-id", auth_stack["client_id"],
                 "--token-url", auth_stack["token_url"], str(scans)]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == {"skipped_not_a_scan": 0, "already_done": 0, "complete": 2}
    scan_id = json.loads((out / "results.jsonl").read_text().splitlines()[0])["scan_id"]
    scan_url = f"{auth_stack['url']}/v1/scans/{scan_id}"

    own = token(auth_stack, auth_stack["client_id"], auth_stack["secret"])
    assert requests.get(scan_url, headers=bearer(own)).json()["status"] == "complete"
    assert requests.get(scan_url + "?format=fhir", headers=bearer(own)).json()["resourceType"] == "Bundle"

    # a second hospital, added as the runbook adds one, is admitted but cannot see the first one's scans
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")} | {
        "AWS_ENDPOINT_URL": auth_stack["aws"], "AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"}
    added = subprocess.run([sys.executable, "-m", "pancscan_local.hospital_client", "--user-pool-id", auth_stack["pool"], "add", "other-hospital"],
                           capture_output=True, text=True, env=env, cwd=Path(__file__).parents[2], check=True)
    other_id, other_secret = re.search(r"client id:\s+(\S+)\nclient secret:\s+(\S+)", added.stdout).groups()
    other = token(auth_stack, other_id, other_secret)
    assert requests.get(scan_url, headers=bearer(other)).status_code == 404
    assert requests.delete(scan_url, headers=bearer(other)).status_code == 404
    assert requests.post(f"{auth_stack['url']}/v1/scans", json=SCAN, headers=bearer(other)).status_code == 201
    # the client's secret is never written to the stack's log
    assert other_secret not in auth_stack["log"].read_text()
    # its owner deletes it
    assert requests.delete(scan_url, headers=bearer(own)).status_code == 204
    assert requests.get(scan_url, headers=bearer(own)).status_code == 404

    # rotation's last step: the old client is removed; it gets no new token, and (locally, where the
    # pool's clients are the audience) its issued token stops working
    def tool(*args):
        return subprocess.run([sys.executable, "-m", "pancscan_local.hospital_client", "--user-pool-id", auth_stack["pool"], *args],
                              capture_output=True, text=True, env=env, cwd=Path(__file__).parents[2], check=True).stdout
    assert f"{other_id}\tother-hospital" in tool("list")
    tool("remove", other_id)
    assert other_id not in tool("list")
    again = subprocess.run([sys.executable, "-m", "pancscan_local.hospital_client", "--user-pool-id", auth_stack["pool"], "remove", other_id],
                           capture_output=True, text=True, env=env, cwd=Path(__file__).parents[2])
    assert again.returncode == 1 and again.stderr.startswith("hospital_client:") and "Traceback" not in again.stderr
    assert requests.post(auth_stack["token_url"], data={"grant_type": "client_credentials"}, auth=(other_id, other_secret)).status_code == 400
    assert requests.post(f"{auth_stack['url']}/v1/scans", json=SCAN, headers=bearer(other)).status_code == 401


def test_tokens_verify_against_the_published_jwks(auth_stack):
    keys = requests.get(auth_stack["token_url"].replace("/oauth2/token", "/.well-known/jwks.json")).json()
    access = token(auth_stack, auth_stack["client_id"], auth_stack["secret"])
    key = jwt.PyJWK(next(k for k in keys["keys"] if k["kid"] == jwt.get_unverified_header(access)["kid"]))
    claims = jwt.decode(access, key.key, algorithms=["RS256"])
    assert claims["client_id"] == auth_stack["client_id"] and claims["token_use"] == "access"
    assert set(claims["scope"].split()) == {"pancscan/submit", "pancscan/read"} and claims["exp"] - claims["iat"] == 3600


def test_the_running_api_with_auth_conforms_to_its_document(auth_stack, tmp_path):
    cli = Path(sys.executable).parent / "schemathesis"
    access = token(auth_stack, auth_stack["client_id"], auth_stack["secret"])
    result = subprocess.run(
        [str(cli), "run", f"{auth_stack['url']}/v1/openapi.json", "--url", auth_stack["url"], "-H", f"Authorization: Bearer {access}",
         "--max-examples", "25", "--seed", "1", "--no-color"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-4000:]


def test_the_page_says_uploads_are_for_hospital_systems_only(auth_stack):
    from playwright.sync_api import sync_playwright

    from tests.e2e.test_site import CHROMIUM, FLAGS

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        page = browser.new_page()
        page.goto(auth_stack["url"] + "/")
        page.wait_for_function("document.getElementById('file').disabled")
        assert "hospital systems only" in page.text_content("#file-error")
        browser.close()


def test_the_batch_client_says_why_it_was_refused(auth_stack, nih_dir, tmp_path, monkeypatch, capsys):
    scans = tmp_path / "scans"
    scans.mkdir()
    (scans / "a.jpg").write_bytes(sorted((nih_dir / "images").glob("*.jpg"))[0].read_bytes())
    monkeypatch.setenv("PANCSCAN_CLIENT_SECRET", "wrong")
    with pytest.raises(SystemExit, match="invalid_client"):
        main(["submit", "--api", auth_stack["url"], "--out", str(tmp_path / "out"), "--client-id", auth_stack["client_id"],
              "--token-url", auth_stack["token_url"], str(scans)])
    # no credentials at all: each scan is recorded as an error with the gateway's reason, and retried next run
    assert main(["submit", "--api", auth_stack["url"], "--out", str(tmp_path / "out"), "--retries", "0", str(scans)]) == 1
    (record,) = [json.loads(line) for line in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    assert record["status"] == "error" and record["reason_code"] == "client_error"
    assert "HTTP 401" in record["reason_message"] and "no token" in record["reason_message"]
