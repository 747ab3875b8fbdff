"""Research retention against moto: the inference handler keeps a de-identified entry in the research
table (built from template.yaml) and `pancscan export-results` writes it as CSV."""

import csv
import json

import pytest

from pancscan.service.aws import DynamoResearchStore
from pancscan.service.research import research_entry
from pancscan_cli.main import main
from pancscan_local.lambda_runtime import LocalContext, load_handler
from pancscan_local.resources import create_table
from tests.integration.conftest import BUCKET, EVENTS
from tests.integration.test_pipeline import create, upload

RESEARCH_TABLE = "pancscan-test-research"


@pytest.fixture
def research_on(aws, monkeypatch):
    create_table(aws["dynamodb"], RESEARCH_TABLE, "ResearchTable")
    monkeypatch.setenv("RESEARCH_TABLE_NAME", RESEARCH_TABLE)
    monkeypatch.setenv("RESEARCH_RETENTION_DAYS", "365")


def test_a_scored_scan_is_kept_de_identified_and_exported_and_goes_when_deleted(aws, research_on, api, ct_slice, tmp_path):
    inference = load_handler("inference", cold=True)
    created = create(api, ct_slice)
    key = upload(aws, created, ct_slice)
    event = json.loads((EVENTS / "s3_object_created.json").read_text())
    event["Records"][0]["s3"]["bucket"]["name"] = BUCKET
    event["Records"][0]["s3"]["object"]["key"] = key
    inference(event, LocalContext("inference"))

    (item,) = aws["dynamodb"].scan(TableName=RESEARCH_TABLE)["Items"]
    assert set(item) == {"scan_id", "entry", "expires_at"}
    assert created["result_token"] not in json.dumps(item)
    # an entry past its retention is not exported, even before DynamoDB's TTL removes it
    DynamoResearchStore(RESEARCH_TABLE).keep(research_entry("expired", "complete", {}, now=0), expires_at=1)
    out = tmp_path / "research.csv"
    assert main(["export-results", "--table", RESEARCH_TABLE, "--out", str(out)]) == 0
    (row,) = list(csv.DictReader(out.open()))
    assert row["scan_id"] == created["scan_id"] and row["status"] == "complete" and row["format"] == "jpeg"
    assert 0 <= float(row["probability"]) <= 1 and row["model_version"]
    # "delete this result now" removes the research copy as well
    assert api("DELETE", f"/v1/scans/{created['scan_id']}", token=created["result_token"])[0] == 204
    assert aws["dynamodb"].scan(TableName=RESEARCH_TABLE)["Count"] == 1  # only the expired one, until its TTL
