"""The only place that talks to AWS: DynamoDB and S3 behind the ScanStore and UploadStore
interfaces of ``pancscan.service.scans``. Clients honour AWS_ENDPOINT_URL (the local stack sets it)."""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from pancscan.errors import ScanRejected
from pancscan.service.scans import BUSY, CLAIMED, GONE, PENDING, PROCESSING, RESULTS_PREFIX, ScanRecord


def _config() -> Config:
    # The local stand-in answers on an IP address: path-style URLs, and s3v4 signatures, which
    # browsers' CORS preflights need there too.
    style = "path" if os.environ.get("AWS_ENDPOINT_URL") else "auto"
    # Throttling and timeouts are retried here first (5 tries in all, backoff); then by Lambda's async retry.
    return Config(signature_version="s3v4", s3={"addressing_style": style}, retries={"mode": "standard", "total_max_attempts": 5})


class DynamoScanStore:
    def __init__(self, table_name: str, resource=None):
        self.table = (resource or boto3.resource("dynamodb", config=_config())).Table(table_name)

    def create(self, record: ScanRecord) -> None:
        item = {
            "scan_id": record.scan_id,
            "token_hash": record.token_hash,
            "status": record.status,
            "created_at": record.created_at,
            "updated_at": record.created_at,
            "expires_at": record.expires_at,
            "content_type": record.content_type,
            "size": record.size,
        }
        if record.owner:
            item["owner"] = record.owner
        self.table.put_item(Item=item, ConditionExpression="attribute_not_exists(scan_id)")

    def get(self, scan_id: str) -> ScanRecord | None:
        item = self.table.get_item(Key={"scan_id": scan_id}, ConsistentRead=True).get("Item")
        if item is None:
            return None
        return ScanRecord(
            scan_id=item["scan_id"],
            token_hash=item["token_hash"],
            status=item["status"],
            created_at=int(item["created_at"]),
            expires_at=int(item["expires_at"]),
            content_type=item["content_type"],
            size=int(item["size"]),
            # results are kept as JSON text: floats stay floats (DynamoDB numbers would be Decimals)
            result=json.loads(item.get("result", "{}")),
            heatmap_png=bytes(item["heatmap_png"]) if "heatmap_png" in item else None,
            slice_png=bytes(item["slice_png"]) if "slice_png" in item else None,
            owner=item.get("owner"),
        )

    def delete(self, scan_id: str) -> None:
        self.table.delete_item(Key={"scan_id": scan_id})

    def claim(self, scan_id: str, now: int, lease_seconds: int) -> str:
        try:
            self.table.update_item(
                Key={"scan_id": scan_id},
                UpdateExpression="SET #s = :processing, claimed_at = :now, updated_at = :now ADD attempts :one",
                ConditionExpression="attribute_exists(scan_id) AND (#s = :pending OR (#s = :processing AND claimed_at < :stale))",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={":processing": PROCESSING, ":pending": PENDING, ":now": now,
                                           ":stale": now - lease_seconds, ":one": 1},
            )
            return CLAIMED
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
        record = self.get(scan_id)
        return BUSY if record is not None and record.status == PROCESSING else GONE

    def finish(self, scan_id: str, status: str, result: dict, pngs: dict[str, bytes], now: int) -> None:
        names = {"#s": "status", "#r": "result"}
        values = {":status": status, ":result": json.dumps(result), ":now": now, ":processing": PROCESSING}
        update = "SET #s = :status, #r = :result, updated_at = :now"
        for name, data in pngs.items():  # heatmap_png, slice_png
            update += f", {name} = :{name}"
            values[f":{name}"] = data
        # Only the claimer finishes, and a scan deleted meanwhile is not brought back.
        self.table.update_item(
            Key={"scan_id": scan_id},
            UpdateExpression=update,
            ConditionExpression="#s = :processing",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )


class DynamoResearchStore:
    """De-identified results kept for research (pancscan.service.research); the entry is kept as JSON text."""

    def __init__(self, table_name: str, resource=None):
        self.table = (resource or boto3.resource("dynamodb", config=_config())).Table(table_name)

    def keep(self, entry: dict, expires_at: int) -> None:
        self.table.put_item(Item={"scan_id": entry["scan_id"], "entry": json.dumps(entry), "expires_at": expires_at})

    def forget(self, scan_id: str) -> None:
        self.table.delete_item(Key={"scan_id": scan_id})

    def entries(self, now: int | None = None) -> Iterator[dict]:
        """Every unexpired entry (DynamoDB deletes expired items only eventually)."""
        now = int(time.time()) if now is None else now
        arguments = {}
        while True:
            page = self.table.scan(**arguments)
            for item in page["Items"]:
                if int(item["expires_at"]) > now:
                    yield json.loads(item["entry"])
            if "LastEvaluatedKey" not in page:
                return
            arguments = {"ExclusiveStartKey": page["LastEvaluatedKey"]}


class S3UploadStore:
    def __init__(self, bucket: str, client=None):
        self.bucket = bucket
        self.client = client or boto3.client("s3", config=_config())

    def presigned_post(self, key: str, content_type: str, max_bytes: int, expires_in: int) -> dict:
        # The policy pins the key, the content type and the size range; the client chooses none of them.
        return self.client.generate_presigned_post(
            Bucket=self.bucket,
            Key=key,
            Fields={"Content-Type": content_type},
            Conditions=[{"Content-Type": content_type}, ["content-length-range", 1, max_bytes]],  # boto3 adds bucket and key
            ExpiresIn=expires_in,
        )

    def read(self, key: str, max_bytes: int) -> bytes | None:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=key)
        except ClientError as error:
            if error.response["Error"]["Code"] == "NoSuchKey":
                return None
            raise
        body = response["Body"]
        try:
            if response["ContentLength"] > max_bytes:
                raise ScanRejected("too_large", f"The file is larger than {max_bytes} bytes.")
            return body.read()  # no more than ContentLength
        finally:
            body.close()

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=key)


class S3SheetStore:
    """A series' slice sheets under results/<scan_id>/ (a lifecycle rule expires them with the result)."""

    MEDIA_TYPES = {".jpg": "image/jpeg", ".png": "image/png"}

    def __init__(self, bucket: str, client=None):
        self.bucket = bucket
        self.client = client or boto3.client("s3", config=_config())

    def _key(self, scan_id: str, name: str) -> str:
        return f"{RESULTS_PREFIX}{scan_id}/{name}"

    def put(self, scan_id: str, sheets: dict[str, bytes]) -> None:
        def put_one(item):
            name, data = item
            self.client.put_object(Bucket=self.bucket, Key=self._key(scan_id, name), Body=data,
                                   ContentType=self.MEDIA_TYPES[name[name.rfind("."):]], CacheControl="private, max-age=300")

        with ThreadPoolExecutor(max_workers=4) as pool:  # a few sheets; in parallel they cost one round trip
            list(pool.map(put_one, sheets.items()))

    def delete(self, scan_id: str) -> None:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self._key(scan_id, ""))
        keys = [{"Key": item["Key"]} for page in pages for item in page.get("Contents", [])]
        if keys:  # up to 1000 a call; a series has two per 64 scored slices
            self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": keys, "Quiet": True})

    def url(self, scan_id: str, name: str, expires_in: int) -> str:
        return self.client.generate_presigned_url("get_object", Params={"Bucket": self.bucket, "Key": self._key(scan_id, name)},
                                                  ExpiresIn=expires_in)
