"""What the in-memory fakes promise, held by the real stores (moto's DynamoDB): a scan is finished
only from `processing`, a deleted scan stays deleted, every item keeps its TTL and token hash, and
the owner is what decides who reads a hospital's scan."""

import pytest
from botocore.exceptions import ClientError

from pancscan.service import scans
from pancscan.service.aws import DynamoScanStore
from tests.integration.conftest import TABLE

NOW = 1_000_000


@pytest.fixture
def store(aws):
    return DynamoScanStore(TABLE)


def created(store, owner=None) -> tuple[scans.ScanRecord, str]:
    record, token = scans.new_scan(scans.UploadRequest("a.dcm", "application/dicom", 10), now=NOW, ttl_seconds=3600, owner=owner)
    store.create(record)
    return record, token


def raw_item(aws, scan_id):
    return aws["dynamodb"].get_item(TableName=TABLE, Key={"scan_id": {"S": scan_id}}, ConsistentRead=True).get("Item")


def refused(call) -> str:
    with pytest.raises(ClientError) as caught:
        call()
    return caught.value.response["Error"]["Code"]


def test_a_scan_is_finished_only_by_its_claimer_while_it_is_processing(store):
    record, _ = created(store)
    finish = lambda: store.finish(record.scan_id, scans.COMPLETE, {"label": "no_cancer_detected"}, {}, NOW + 5)  # noqa: E731
    assert refused(finish) == "ConditionalCheckFailedException"  # never claimed: still pending
    assert store.get(record.scan_id).status == scans.PENDING and store.get(record.scan_id).result == {}
    assert store.claim(record.scan_id, NOW + 1, 60) == scans.CLAIMED
    finish()
    assert store.get(record.scan_id).status == scans.COMPLETE
    assert refused(lambda: store.finish(record.scan_id, scans.FAILED, {"reason": {"code": "x"}}, {}, NOW + 9)) == \
        "ConditionalCheckFailedException"  # final stays final
    assert store.get(record.scan_id).result == {"label": "no_cancer_detected"}


def test_a_scan_deleted_while_it_is_processed_stays_deleted(store, aws):
    record, _ = created(store)
    assert store.claim(record.scan_id, NOW + 1, 60) == scans.CLAIMED
    store.delete(record.scan_id)  # the owner's DELETE, while the model runs
    assert refused(lambda: store.finish(record.scan_id, scans.COMPLETE, {"label": "x"}, {"heatmap_png": b"png"}, NOW + 5)) == \
        "ConditionalCheckFailedException"
    assert raw_item(aws, record.scan_id) is None  # not brought back without a TTL or a token hash
    assert store.claim(record.scan_id, NOW + 70, 60) == scans.GONE  # nor by a retry


def test_every_item_keeps_its_ttl_and_token_hash_from_creation_to_its_result(store, aws):
    record, token = created(store)
    ttl = aws["dynamodb"].describe_time_to_live(TableName=TABLE)["TimeToLiveDescription"]
    assert ttl["AttributeName"] == "expires_at" and ttl["TimeToLiveStatus"] == "ENABLED"
    stages = [raw_item(aws, record.scan_id)]
    store.claim(record.scan_id, NOW + 1, 60)
    stages.append(raw_item(aws, record.scan_id))
    store.finish(record.scan_id, scans.COMPLETE, {"label": "no_cancer_detected"}, {"heatmap_png": b"png"}, NOW + 5)
    stages.append(raw_item(aws, record.scan_id))
    for item in stages:
        assert int(item["expires_at"]["N"]) == NOW + 3600
        assert item["token_hash"]["S"] == scans.hash_token(token) and token not in str(item)
    assert int(stages[1]["attempts"]["N"]) == 1 and stages[2]["status"]["S"] == scans.COMPLETE
    assert [int(item["updated_at"]["N"]) for item in stages] == [NOW, NOW + 1, NOW + 5]  # when each step happened


def test_a_finished_scan_reads_back_as_it_was_stored(store):
    record, _ = created(store)
    store.claim(record.scan_id, NOW + 1, 60)
    store.finish(record.scan_id, scans.COMPLETE, {"label": "cancer_detected", "probability": 0.8125},
                 {"heatmap_png": b"heat", "slice_png": b"slice"}, NOW + 5)
    back = store.get(record.scan_id)
    assert (back.scan_id, back.token_hash, back.status, back.created_at, back.expires_at, back.content_type, back.size) == (
        record.scan_id, record.token_hash, scans.COMPLETE, NOW, NOW + 3600, "application/dicom", 10)
    assert (back.result, back.heatmap_png, back.slice_png, back.owner) == ({"label": "cancer_detected", "probability": 0.8125},
                                                                          b"heat", b"slice", None)
    rejected, _ = created(store)
    store.claim(rejected.scan_id, NOW + 1, 60)
    store.finish(rejected.scan_id, scans.REJECTED, {"reason": {"code": "not_abdominal_ct"}}, {}, NOW + 5)
    assert (store.get(rejected.scan_id).heatmap_png, store.get(rejected.scan_id).slice_png) == (None, None)


def test_the_store_asks_dynamodb_for_consistent_reads(store):
    # a result polled right after it was written must be seen: DynamoDB's default reads may lag by up to a second
    sent = []
    store.table.meta.client.meta.events.register("provide-client-params.dynamodb.GetItem", lambda params, **_: sent.append(params))
    record, _ = created(store)
    store.get(record.scan_id)
    assert [params.get("ConsistentRead") for params in sent] == [True]


def test_a_hospital_scan_is_read_by_its_owner_only_and_a_public_one_by_its_token_only(store, aws):
    owned, owned_token = created(store, owner="hospital-a")
    public, public_token = created(store)
    assert raw_item(aws, owned.scan_id)["owner"]["S"] == "hospital-a" and "owner" not in raw_item(aws, public.scan_id)
    owned_back, public_back = store.get(owned.scan_id), store.get(public.scan_id)
    assert scans.readable(owned_back, None, NOW, client="hospital-a")
    assert not scans.readable(owned_back, owned_token, NOW, client="hospital-b")  # its token does not help another client
    assert not scans.readable(owned_back, owned_token, NOW)  # nor anyone without the owner's token
    assert scans.readable(public_back, public_token, NOW) and not scans.readable(public_back, "guess", NOW)
    assert not scans.readable(public_back, public_token, NOW + 3600)  # expired, before DynamoDB removes it


def test_a_scan_id_is_created_once(store):
    record, _ = created(store)
    assert refused(lambda: store.create(record)) == "ConditionalCheckFailedException"


# --- the research store, the sheet store and the clients' settings -----------------------------------


def test_research_entries_are_those_not_yet_expired_at_the_given_time(aws):
    from pancscan.service.aws import DynamoResearchStore
    from tests.integration.test_research_retention import RESEARCH_TABLE, create_table

    create_table(aws["dynamodb"], RESEARCH_TABLE, "ResearchTable")
    research = DynamoResearchStore(RESEARCH_TABLE)
    for name, expires_at in (("past", NOW - 1), ("now", NOW), ("later", NOW + 1)):
        research.keep({"scan_id": name}, expires_at=expires_at)
    assert [entry["scan_id"] for entry in research.entries(now=NOW)] == ["later"]  # an entry expires at its second
    assert sorted(entry["scan_id"] for entry in research.entries(now=NOW - 10)) == ["later", "now", "past"]
    assert list(research.entries()) == []  # by default, now: all three expired long ago


class PagedTable:
    """DynamoDB's Scan as boto3 answers it: a page at a time, LastEvaluatedKey until the last."""

    def __init__(self, pages):
        self.pages, self.calls = pages, []

    def scan(self, **arguments):
        self.calls.append(arguments)
        start = arguments.get("ExclusiveStartKey", {"page": 0})["page"]
        page = {"Items": self.pages[start]}
        if start + 1 < len(self.pages):
            page["LastEvaluatedKey"] = {"page": start + 1}
        return page


def test_research_entries_are_read_page_after_page():
    import json

    from pancscan.service.aws import DynamoResearchStore

    research = DynamoResearchStore.__new__(DynamoResearchStore)
    research.table = PagedTable([[{"entry": json.dumps({"scan_id": f"{p}-{k}"}), "expires_at": NOW + 1} for k in range(2)] for p in range(3)])
    assert [entry["scan_id"] for entry in research.entries(now=NOW)] == ["0-0", "0-1", "1-0", "1-1", "2-0", "2-1"]
    assert research.table.calls == [{}, {"ExclusiveStartKey": {"page": 1}}, {"ExclusiveStartKey": {"page": 2}}]


def test_sheets_are_stored_private_cached_five_minutes_with_their_media_types(aws):
    from pancscan.service.aws import S3SheetStore
    from tests.integration.conftest import BUCKET

    S3SheetStore(BUCKET).put("scan-1", {"slices-0.jpg": b"jpeg", "heatmaps-0.png": b"png"})
    heads = {name: aws["s3"].head_object(Bucket=BUCKET, Key=f"results/scan-1/{name}") for name in ("slices-0.jpg", "heatmaps-0.png")}
    assert {name: (head["ContentType"], head["CacheControl"]) for name, head in heads.items()} == {
        "slices-0.jpg": ("image/jpeg", "private, max-age=300"), "heatmaps-0.png": ("image/png", "private, max-age=300")}


def test_a_sheet_url_lives_as_long_as_asked(aws):
    from urllib.parse import parse_qs, urlparse

    from pancscan.service.aws import S3SheetStore
    from tests.integration.conftest import BUCKET

    url = S3SheetStore(BUCKET).url("scan-1", "slices-0.jpg", 120)
    query = parse_qs(urlparse(url).query)
    assert urlparse(url).path.endswith("/results/scan-1/slices-0.jpg") and query["X-Amz-Expires"] == ["120"]


def test_every_store_tries_five_times_in_all_and_s3_is_path_style_on_a_local_endpoint(aws, monkeypatch):
    from pancscan.service.aws import DynamoResearchStore, S3SheetStore, S3UploadStore
    from tests.integration.conftest import BUCKET

    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:5000")
    clients = {"scans": DynamoScanStore(TABLE).table.meta.client, "research": DynamoResearchStore("r").table.meta.client,
               "uploads": S3UploadStore(BUCKET).client, "sheets": S3SheetStore(BUCKET).client}
    for name, client in clients.items():
        assert (client.meta.config.retries["mode"], client.meta.config.retries["total_max_attempts"]) == ("standard", 5), name
        assert client.meta.config.signature_version == "s3v4", name
    assert clients["uploads"].meta.config.s3["addressing_style"] == clients["sheets"].meta.config.s3["addressing_style"] == "path"
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    assert S3UploadStore(BUCKET).client.meta.config.s3["addressing_style"] == "auto"  # AWS's own choice
