"""Just enough of AWS Lambda to call the real handlers locally: loading them, a context, and the
API Gateway HTTP API (payload 2.0) event and response shapes."""

from __future__ import annotations

import base64
import importlib.util
import sys
import time
import uuid
from dataclasses import dataclass, field

from pancscan_local.template import REPO

FUNCTIONS = REPO / "functions"


def load_handler(function: str, cold: bool = False):
    """functions/<function>/app.py's ``handler``, imported once as its own module (settings are
    read and the model loaded at import, as at a cold start); ``cold``: import it again."""
    name = f"pancscan_function_{function}"
    if cold or name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, FUNCTIONS / function / "app.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name].handler


@dataclass
class LocalContext:
    function_name: str
    memory_limit_in_mb: int = 1024
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    timeout_s: float = 60.0
    started: float = field(default_factory=time.monotonic)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:us-east-1:123456789012:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return int((self.timeout_s - (time.monotonic() - self.started)) * 1000)


def http_api_event(method: str, path: str, query: str, headers: dict[str, str], body: bytes, source_ip: str,
                   route_key: str = "$default", authorizer: dict | None = None) -> dict:
    """An API Gateway HTTP API payload 2.0 event, as the $default stage would deliver it; ``authorizer``
    is what a JWT authorizer adds (its claims and scopes)."""
    text_body = None
    is_base64 = False
    if body:
        try:
            text_body = body.decode("utf-8")
        except UnicodeDecodeError:
            text_body, is_base64 = base64.b64encode(body).decode(), True
    query_params = {}
    for pair in filter(None, query.split("&")):
        key, _, value = pair.partition("=")
        query_params[key] = value
    now = time.time()
    event = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": path,
        "rawQueryString": query,
        "headers": {k.lower(): v for k, v in headers.items()},
        "queryStringParameters": query_params or None,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": headers.get("Host", "localhost"),
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": source_ip,
                     "userAgent": headers.get("User-Agent", "")},
            "requestId": str(uuid.uuid4()),
            "routeKey": route_key,
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "body": text_body,
        "isBase64Encoded": is_base64,
    }
    if authorizer:
        event["requestContext"]["authorizer"] = authorizer
    return event


def response_parts(response: dict) -> tuple[int, dict[str, str], bytes]:
    body = response.get("body") or ""
    data = base64.b64decode(body) if response.get("isBase64Encoded") else body.encode()
    headers = dict(response.get("headers") or {})
    for name, values in (response.get("multiValueHeaders") or {}).items():
        headers[name] = ", ".join(values)
    return response["statusCode"], headers, data
