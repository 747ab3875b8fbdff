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
