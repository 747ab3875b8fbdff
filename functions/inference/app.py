"""PancScan inference (S3 ObjectCreated under uploads/): score each uploaded scan, record the result
(and a series' slice sheets, under results/).

Thin: the model is loaded once per container at import; each record goes through
``pancscan.service.inference.process_upload``. Logs carry scan ids and outcomes, never file contents.
"""

from __future__ import annotations

import time
from urllib.parse import unquote_plus

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.data_classes import S3Event, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from pancscan.detection.model import load_model
from pancscan.detection.predict import predict_bytes
from pancscan.service.aws import DynamoResearchStore, DynamoScanStore, S3SheetStore, S3UploadStore
from pancscan.service.inference import Retention, process_upload
from pancscan.service.settings import Settings

logger = Logger(service="pancscan-inference")
settings = Settings.from_env()
store = DynamoScanStore(settings.table)
uploads = S3UploadStore(settings.bucket)
sheets = S3SheetStore(settings.bucket)
retention = Retention(DynamoResearchStore(settings.research_table), settings.research_retention_days) if settings.research_table else None
model = load_model()


def score(data: bytes):
    return predict_bytes(data, model)


@logger.inject_lambda_context(clear_state=True)
@event_source(data_class=S3Event)
def handler(event: S3Event, context: LambdaContext) -> dict:
    outcomes = []
    for record in event.records:
        key = unquote_plus(record.s3.get_object.key)  # S3 events carry URL-encoded keys
        started = time.perf_counter()
        outcome = process_upload(key, uploads, store, score, max_bytes=settings.max_upload_bytes, now=int(time.time()),
                                 lease_seconds=settings.processing_lease_seconds, retention=retention, sheets=sheets)
        logger.info("upload processed", extra={"scan_id": outcome.scan_id, "status": outcome.status,
                                              "reason_code": outcome.reason_code,
                                              "seconds": round(time.perf_counter() - started, 3)})
        outcomes.append(outcome.status)
    return {"processed": outcomes}
