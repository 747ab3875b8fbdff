"""PancScan API (API Gateway HTTP API): create scans with a presigned upload, read and delete results.

Thin: parse the request, call the domain (``pancscan.service.scans``), map errors to JSON responses.
Each route and error handler only hands its request to a plain function below it: mutmut, which
checks that the tests notice a changed line, leaves decorated functions alone, so nothing is
decided inside one.
"""

from __future__ import annotations

import json
import re
import time
from typing import Annotated, Literal

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestUnsupportedContentType, RequestValidationError
from aws_lambda_powertools.event_handler.openapi.models import APIKey, APIKeyIn, OAuth2, OAuthFlowClientCredentials, OAuthFlows
from aws_lambda_powertools.event_handler.openapi.params import Header, Path, Query
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, BeforeValidator, Field

from pancscan import __version__
from pancscan.errors import FAILURE_CODES, REASON_CODES
from pancscan.outputs.fhir import fhir_bundle
from pancscan.service import scans
from pancscan.service.aws import DynamoResearchStore, DynamoScanStore, S3SheetStore, S3UploadStore
from pancscan.service.settings import Settings

logger = Logger(service="pancscan-api")
settings = Settings.from_env()
store = DynamoScanStore(settings.table)
uploads = S3UploadStore(settings.bucket)
sheets = S3SheetStore(settings.bucket)
research = DynamoResearchStore(settings.research_table) if settings.research_table else None
app = APIGatewayHttpResolver(enable_validation=True)

TokenHeader = Annotated[str | None, Header(alias="x-scan-token", description="The result_token returned when the scan was created (public flow).")]
ScanIdPath = Annotated[str, Path(description="The scan_id returned when the scan was created.")]
FormatQuery = Annotated[Literal["json", "fhir"], Query(description="json (default) or fhir: a FHIR R4 Bundle with a DiagnosticReport")]
ContentType = Literal[scans.CONTENT_TYPES]


def _whole_number(value):
    """JSON integers, including 20.0; never strings or booleans (pydantic's lax mode takes "10")."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("must be a number")
    if isinstance(value, float) and not value.is_integer():
        raise ValueError("must be a whole number")
    return int(value)


WholeNumber = Annotated[int, BeforeValidator(_whole_number)]

# Who may call: hospital clients with an access token (AuthMode jwt: API Gateway's JWT authorizer
# checks it and the scopes per route), or anyone, reading a scan with its token (the public flow).
if settings.auth_required:
    SCOPES = {"pancscan/submit": "create scans and upload them", "pancscan/read": "read and delete this client's scans"}
    SECURITY_SCHEMES = {"hospitalClient": OAuth2(
        description="A hospital's app client (client-credentials flow); send the access token as Authorization: Bearer <token>.",
        flows=OAuthFlows(clientCredentials=OAuthFlowClientCredentials(tokenUrl=settings.token_url, scopes=SCOPES)))}
    SUBMIT, READ = [{"hospitalClient": ["pancscan/submit"]}], [{"hospitalClient": ["pancscan/read"]}]
else:
    SECURITY_SCHEMES = {"scanToken": APIKey(name="x-scan-token", in_=APIKeyIn.header,
                                            description="The result_token returned when the scan was created.")}
    SUBMIT, READ = None, [{"scanToken": []}]


class CreateScan(BaseModel):
    filename: str = Field(min_length=1, max_length=255, description="Any name (send a neutral one); never stored.")
    content_type: ContentType = Field(description="DICOM, a zip of one DICOM series, NIfTI (.nii.gz: gzip; .nii: octet-stream), PNG or JPEG")
    size: WholeNumber = Field(gt=0, le=settings.max_upload_bytes, description="The file's size in bytes.")


class ErrorDetail(BaseModel):
    code: Literal[tuple(scans.REQUEST_ERROR_CODES)]
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail


class GatewayError(BaseModel):
    message: Literal["Unauthorized", "Forbidden"]


class Reason(BaseModel):
    code: str = Field(description="A stable reason code: " + ", ".join(list(REASON_CODES) + list(FAILURE_CODES)))
    message: str


class Png(BaseModel):
    media_type: Literal["image/png"]
    data: str = Field(description="base64")


class SheetUrls(BaseModel):
    image: str = Field(description="JPEG: 8 tiles a row of 256 x 256 slices as the model saw them (HU clipped to 0..255)")
    heatmap: str = Field(description="PNG: the same tiles' 64 x 64 heatmaps, grey 0..255 = lesion probability 0..1")


class SliceTile(BaseModel):
    index: int = Field(description="The slice, as in series.slice_probabilities (inferior to superior, from 0)")
    sheet: int
    column: int
    row: int


class SliceSheets(BaseModel):
    scan_id: str
    urls_expire_at: int = Field(description="The sheet URLs work until then (epoch seconds); ask again for new ones.")
    columns: int
    image_tile_px: int
    heatmap_tile_px: int
    slices: list[SliceTile] = Field(description="Every scored slice of a series, in order; empty for a single image "
                                                "(its heatmap is in the scan's own view) or a rejected scan")
    sheets: list[SheetUrls]


class ScanView(BaseModel):
    scan_id: str
    status: Literal[(scans.PENDING, scans.PROCESSING, *scans.FINAL_STATUSES)]
    created_at: int
    expires_at: int
    label: Literal["cancer_detected", "no_cancer_detected"] | None = None
    probability: float | None = None
    confidence: float | None = None
    threshold: float | None = None
    model_version: str | None = None
    reason: Reason | None = None
    series: dict | None = None
    technical: dict | None = None
    heatmap: Png | None = None
    slice_image: Png | None = None


def errors(*codes: int) -> dict:
    descriptions = {400: "invalid request", 409: "no final result yet",
                    404: "unknown scan, or another client's" if settings.auth_required else "unknown scan, or wrong or missing token"}
    answers = {code: {"description": descriptions[code], "content": {"application/json": {"model": ErrorBody}}} for code in codes}
    if settings.auth_required:  # API Gateway's own answers, before the function runs
        challenge = {"www-authenticate": {"description": 'Bearer scope="..." error="..." error_description="why"',
                                          "schema": {"type": "string"}}}
        answers[401] = {"description": "no valid access token", "headers": challenge,
                        "content": {"application/json": {"model": GatewayError}}}
        answers[403] = {"description": "the token lacks this route's scope", "headers": challenge,
                        "content": {"application/json": {"model": GatewayError}}}
    return answers


class UploadForm(BaseModel):
    url: str
    fields: dict[str, str]
    expires_at: int


class CreatedScan(BaseModel):
    scan_id: str
    result_token: str = Field(description="Reads and deletes the scan (header X-Scan-Token) in the public flow; "
                                          "with hospital clients, the creating client's access token does instead.")
    upload: UploadForm


def error(status: int, code: str, message: str, headers: dict | None = None) -> Response:
    return Response(status, content_types.APPLICATION_JSON, {"error": {"code": code, "message": message}}, headers=headers)


def not_found() -> Response:
    # One answer for unknown id, wrong token and missing token: nothing tells them apart.
    return error(404, "not_found", scans.REQUEST_ERROR_CODES["not_found"])


class Unauthenticated(Exception):
    pass


def hospital_client() -> str | None:
    """The calling hospital's app client id (AuthMode jwt), from the claims API Gateway's authorizer
    adds to the event; None in the public flow. The authorizer guards the scan routes; this refuses
    a call that reached one without its claims all the same."""
    if not settings.auth_required:
        return None
    client = app.current_event.request_context.authorizer.jwt_claim.get("client_id")
    if not client:
        raise Unauthenticated()
    return client


@app.exception_handler(Unauthenticated)
def unauthenticated(exc: Unauthenticated) -> Response:
    return error(401, "unauthorized", scans.REQUEST_ERROR_CODES["unauthorized"], headers={"WWW-Authenticate": "Bearer"})


@app.exception_handler(RequestValidationError)
def invalid_request(exc: RequestValidationError) -> Response:
    return validation_error(exc.errors(), app.current_event.http_method, app.current_event.headers.get("content-type"))


def validation_error(problems: list[dict], method: str, content_type: str | None) -> Response:
    fields = sorted({str(e["loc"][-1]) for e in problems if len(e.get("loc", ())) > 1 and isinstance(e["loc"][-1], str)})
    if method != "POST":  # a query parameter (format) or the path
        return error(400, "invalid_request", f"invalid: {', '.join(fields) or 'the request'} (see /v1/openapi.json)")
    detail = f"invalid or missing: {', '.join(fields)}" if fields else "the body must be a JSON object"
    if "json" not in (content_type or ""):
        detail = "send the body as JSON with the header Content-Type: application/json"
    if fields == ["content_type"]:
        return error(400, "unsupported_type", f"content_type must be one of {', '.join(scans.CONTENT_TYPES)}")
    if fields == ["size"] and any(e.get("type") == "less_than_equal" for e in problems):
        return error(400, "too_large", f"size must be at most {settings.max_upload_bytes} bytes")
    return error(400, "invalid_request", f"{detail} (expected filename, content_type and size)")


ROUTES = {r"^/v1/scans$": "POST", r"^/v1/scans/[^/]+$": "GET, DELETE", r"^/v1/scans/[^/]+/slices$": "GET", r"^/v1/health$": "GET", r"^/v1/openapi\.json$": "GET"}


@app.not_found
def no_such_route(exc: Exception) -> Response:
    return unknown_route(app.current_event.path)


def unknown_route(path: str) -> Response:
    for pattern, allowed in ROUTES.items():
        if re.match(pattern, path):
            return error(405, "method_not_allowed", f"use {allowed}", headers={"Allow": allowed})
    return error(404, "not_found", "No such route; see /v1/openapi.json.")


@app.exception_handler(ValueError)
def unparsable_body(exc: ValueError) -> Response:
    # Powertools raises ValueError on a body it cannot parse (a multipart form without boundary)
    return not_json(exc, app.current_event.headers.get("content-type"))


def not_json(exc: ValueError, content_type: str | None) -> Response:
    if "json" not in (content_type or ""):
        return error(400, "invalid_request", "send the body as JSON with the header Content-Type: application/json")
    raise exc


@app.exception_handler(RequestUnsupportedContentType)
def unsupported_content_type(exc: RequestUnsupportedContentType) -> Response:
    # Powertools' own answer would be a 415 in another shape than every other refusal
    return error(400, "invalid_request", "send the body as JSON with the header Content-Type: application/json")


@app.exception_handler(UnicodeDecodeError)
def undecodable_body(exc: UnicodeDecodeError) -> Response:
    return error(400, "invalid_request", "the body must be UTF-8 JSON")


@app.exception_handler(scans.InvalidRequest)
def rejected_request(exc: scans.InvalidRequest) -> Response:
    return error(400, exc.code, exc.message)


@app.post("/v1/scans", summary="Create a scan and get a presigned upload form", security=SUBMIT,
          responses={201: {"description": "created", "content": {"application/json": {"model": CreatedScan}}}, **errors(400)})
def create_scan(body: CreateScan) -> Response[CreatedScan]:
    return create(body, hospital_client())


def create(body: CreateScan, client: str | None) -> Response:
    request = scans.UploadRequest(body.filename, body.content_type, body.size)
    scans.validate_upload_request(request, settings.max_upload_bytes)
    now = int(time.time())
    record, token = scans.new_scan(request, now, settings.result_ttl_seconds, owner=client)
    store.create(record)
    form = uploads.presigned_post(scans.upload_key(record.scan_id), request.content_type,
                                  settings.max_upload_bytes, settings.upload_url_seconds)
    logger.info("scan created", extra={"scan_id": record.scan_id, "content_type": request.content_type})
    created = CreatedScan(scan_id=record.scan_id, result_token=token,
                          upload=UploadForm(url=form["url"], fields=form["fields"], expires_at=now + settings.upload_url_seconds))
    return Response(201, content_types.APPLICATION_JSON, created.model_dump())


@app.get("/v1/scans/<scan_id>", summary="Read a scan's status and result (format=fhir: a FHIR R4 Bundle)",
         security=READ,
         responses={200: {"description": "the scan", "content": {"application/json": {"model": ScanView},
                                                                 "application/fhir+json": {"schema": {"type": "object"}}}},
                    **errors(400, 404, 409)})
def get_scan(scan_id: ScanIdPath, token: TokenHeader = None, format: FormatQuery = "json"):
    return read(scan_id, token, format, hospital_client())


def read(scan_id: str, token: str | None, format: str, client: str | None) -> Response:
    now = int(time.time())
    record = store.get(scan_id) if scans.UUID_PATTERN.match(scan_id) else None
    if not scans.readable(record, token, now, client):
        return not_found()
    if format == "fhir":
        if record.status not in scans.FINAL_STATUSES:
            return error(409, "not_ready", scans.REQUEST_ERROR_CODES["not_ready"])
        return Response(200, "application/fhir+json", json.dumps(fhir_bundle(record, now)), headers={"Cache-Control": "no-store"})
    return Response(200, content_types.APPLICATION_JSON, scans.public_view(record), headers={"Cache-Control": "no-store"})


@app.get("/v1/scans/<scan_id>/slices", summary="Every scored slice of a series with its heatmap, as image sheets",
         security=READ,
         responses={200: {"description": "where each slice is drawn, and short-lived URLs of the sheets",
                          "content": {"application/json": {"model": SliceSheets}}}, **errors(400, 404, 409)})
def get_slices(scan_id: ScanIdPath, token: TokenHeader = None):
    return read_slices(scan_id, token, hospital_client())


def read_slices(scan_id: str, token: str | None, client: str | None) -> Response:
    now = int(time.time())
    record = store.get(scan_id) if scans.UUID_PATTERN.match(scan_id) else None
    if not scans.readable(record, token, now, client):
        return not_found()
    if record.status not in scans.FINAL_STATUSES:
        return error(409, "not_ready", scans.REQUEST_ERROR_CODES["not_ready"])
    seconds = min(settings.sheet_url_seconds, record.expires_at - now)  # never outliving the result
    view = scans.sheets_view(record, lambda name: sheets.url(scan_id, name, seconds), now, seconds)
    return Response(200, content_types.APPLICATION_JSON, view, headers={"Cache-Control": "no-store"})


@app.delete("/v1/scans/<scan_id>", summary="Delete a scan's result now", security=READ,
            responses={204: {"description": "deleted"}, **errors(400, 404)})
def delete_scan(scan_id: ScanIdPath, token: TokenHeader = None):
    return remove(scan_id, token, hospital_client())


def remove(scan_id: str, token: str | None, client: str | None) -> Response:
    record = store.get(scan_id) if scans.UUID_PATTERN.match(scan_id) else None
    if not scans.readable(record, token, int(time.time()), client):
        return not_found()
    store.delete(scan_id)
    sheets.delete(scan_id)
    if research:  # research retention on: the de-identified copy goes too
        research.forget(scan_id)
    logger.info("scan deleted", extra={"scan_id": scan_id})
    return Response(204, content_types.APPLICATION_JSON, "")


@app.get("/v1/health", summary="Liveness")
def health() -> dict:
    return {"status": "ok", "version": __version__}


@app.get("/v1/openapi.json", summary="This API's OpenAPI document", include_in_schema=False)
def openapi():
    return openapi_document(app.current_event.request_context.stage)


def openapi_document(stage: str) -> Response:
    schema = json.loads(app.get_openapi_json_schema(title="PancScan API", version=__version__, security_schemes=SECURITY_SCHEMES,
                                                    description="Research software, not a medical device."))
    return Response(200, content_types.APPLICATION_JSON, published(schema, "/" if stage == "$default" else f"/{stage}"))


def published(schema: dict, base_url: str) -> dict:
    """Powertools' document made true to this API: invalid requests get 400 with ErrorBody, never
    its default 422; the per-scan token header exists in the public flow only; paths are under the stage."""
    for operation in (op for path in schema["paths"].values() for op in path.values()):
        operation["responses"].pop("422", None)
        if settings.auth_required:
            operation["parameters"] = [p for p in operation.get("parameters", []) if p["name"] != "x-scan-token"] or None
        if not operation.get("parameters"):
            operation.pop("parameters", None)
    for name in ("HTTPValidationError", "ValidationError"):
        schema["components"]["schemas"].pop(name, None)
    schema["servers"] = [{"url": base_url}]
    return schema


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
