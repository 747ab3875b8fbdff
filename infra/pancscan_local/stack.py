"""`pancscan serve`: moto (S3, DynamoDB, SQS) in server mode, the real API and inference handlers,
and one HTTP origin serving the site and the API.

    browser --HTTP--> gateway (this process) --payload 2.0 event--> functions/api handler
    browser --presigned POST--> moto S3 --ObjectCreated--> SQS --dispatcher--> functions/inference handler

With ``auth`` (AuthMode jwt), the gateway routes as template.yaml's routes say and checks hospital
clients' tokens on the scan routes as API Gateway's JWT authorizer does (pancscan_local.auth); a
user pool in moto holds the app clients, and /local-auth/ serves the token endpoint and the JWKS.
"""

from __future__ import annotations

import json
import logging
import mimetypes
import os
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import boto3
from moto.server import ThreadedMotoServer

from pancscan.service.settings import Settings
from pancscan_local.auth import Denied, authorization_header, authorize, event_authorizer
from pancscan_local.issuer import LocalIssuer
from pancscan_local.lambda_runtime import LocalContext, http_api_event, load_handler, response_parts
from pancscan_local.resources import create_resources, create_table, notify_queue
from pancscan_local.template import REPO, api_routes

SITE = REPO / "site"
BUCKET = "pancscan-local-uploads"
TABLE = "pancscan-local-scans"
RESEARCH_TABLE = "pancscan-local-research"
QUEUE = "pancscan-local-uploads-events"
REGION = "us-east-1"


def security_headers(s3_origin: str) -> dict[str, str]:
    # The headers CloudFront sends in production (template.yaml's SiteHeadersPolicy): no inline script, no CDN.
    return {
        "Content-Security-Policy": (
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
            f"connect-src 'self' {s3_origin}; object-src 'none'; base-uri 'none'; form-action 'none'; "
            "frame-ancestors 'none'"
        ),
        "Strict-Transport-Security": "max-age=63072000; includeSubDomains",  # ignored over plain http, as it should be
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
    }


@dataclass
class LocalStack:
    host: str = "127.0.0.1"
    port: int = 8080
    s3_port: int = 5000
    max_upload_bytes: int | None = None
    auth: bool = False  # AuthMode jwt: hospital clients with access tokens only
    research_days: int = 0  # ResearchRetentionDays: 0 = off

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def aws_endpoint(self) -> str:
        return f"http://{self.host}:{self.s3_port}"

    def environment(self) -> dict[str, str]:
        env = {
            "AWS_ENDPOINT_URL": self.aws_endpoint,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "BUCKET_NAME": BUCKET,
            "TABLE_NAME": TABLE,
            # one machine, its cores: series score about 1.4x faster with two interpreter threads
            "PANCSCAN_THREADS": os.environ.get("PANCSCAN_THREADS", str(min(os.cpu_count() or 1, 4))),
        }
        if self.max_upload_bytes:
            env["MAX_UPLOAD_BYTES"] = str(self.max_upload_bytes)
        env["RESEARCH_TABLE_NAME"] = RESEARCH_TABLE if self.research_days else ""
        env["RESEARCH_RETENTION_DAYS"] = str(self.research_days)
        env["AUTH_MODE"] = "jwt" if self.auth else "off"
        env["TOKEN_URL"] = f"{self.url}/local-auth/oauth2/token" if self.auth else ""
        return env

    def client(self, service: str):
        return boto3.client(service, endpoint_url=self.aws_endpoint, region_name=REGION,
                            aws_access_key_id="local", aws_secret_access_key="local")

    def start(self) -> "LocalStack":
        """Start every part; a port of 0 is one the system chooses (``url`` and ``aws_endpoint`` then say which)."""
        for option, port in (("--port", self.port), ("--s3-port", self.s3_port)):
            if port and not _port_free(self.host, port):
                raise SystemExit(f"port {port} on {self.host} is in use: choose another with {option}")
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request lines
        self._moto = ThreadedMotoServer(ip_address=self.host, port=self.s3_port, verbose=False)
        self._moto.start()
        self.s3_port = self._moto.get_host_and_port()[1]
        # bound now, served once the rest is ready: the bucket's CORS and the issuer need its address
        self._http = _QuietServer((self.host, self.port), _gateway(self))
        self.port = self._http.server_address[1]
        os.environ.update(self.environment())  # the handlers read their settings from here, as in Lambda
        s3, sqs = self.client("s3"), self.client("sqs")
        create_resources(s3, self.client("dynamodb"), bucket=BUCKET, table=TABLE, site_origin=self.url)
        self._queue_url = notify_queue(s3, sqs, bucket=BUCKET, queue=QUEUE)
        if self.research_days:
            create_table(self.client("dynamodb"), RESEARCH_TABLE, "ResearchTable")
        self.routes = api_routes(self.auth)
        if self.auth:
            self.issuer = LocalIssuer(self.client("cognito-idp"), self.url)
            self.hospital = self.issuer.add_client("local-hospital")  # one to start with
        self._api = load_handler("api")
        self._api_lock = threading.Lock()
        self._inference = load_handler("inference")  # loads the model: a cold start
        self._stopping = threading.Event()
        self._dispatcher = threading.Thread(target=self._dispatch, args=(sqs,), name="s3-events", daemon=True)
        self._dispatcher.start()
        threading.Thread(target=self._http.serve_forever, name="gateway", daemon=True).start()
        return self

    def stop(self, seconds_per_part: float = 5) -> list[str]:
        """Stop the gateway, the dispatcher and moto, giving each at most `seconds_per_part`.

        Returns the parts that did not stop in time; their threads are daemons and end with the process."""
        self._stopping.set()
        parts = {"gateway": self._stop_gateway, "s3-events": self._dispatcher.join, "moto": self._moto.stop}
        return [name for name, stop in parts.items() if not _finishes(stop, seconds_per_part)]

    def _stop_gateway(self) -> None:
        self._http.shutdown()
        self._http.server_close()

    def _dispatch(self, sqs) -> None:
        """S3 notifications -> the inference handler, one invocation per event, as Lambda does."""
        while not self._stopping.is_set():
            messages = sqs.receive_message(QueueUrl=self._queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
            for message in messages:
                event = json.loads(message["Body"])
                if event.get("Records"):  # S3 also sends an s3:TestEvent when notifications are set
                    try:
                        self._inference(event, LocalContext("pancscan-inference"))
                    except Exception as error:  # Lambda would log it and retry; the scan is already marked failed
                        print(f"inference error: {type(error).__name__}", flush=True)
                sqs.delete_message(QueueUrl=self._queue_url, ReceiptHandle=message["ReceiptHandle"])

    def call_api(self, method: str, path: str, query: str, headers: dict[str, str], body: bytes, source_ip: str):
        route = next((r for r in self.routes if r.matches(method, path)), None)
        if route is None:
            return 404, {"Content-Type": "application/json"}, b'{"message":"Not Found"}'
        authorizer = None
        if route.authorization == "JWT":
            try:
                authorizer = event_authorizer(authorize(authorization_header(headers), self.issuer.configuration(), route.scopes))
            except Denied as denied:
                return denied.status, denied.headers, denied.body
        event = http_api_event(method, path, query, headers, body, source_ip, f"{route.method} {route.path}", authorizer)
        # One invocation at a time, as in a Lambda container (the handler's boto3 resource is not
        # thread-safe; the gateway's threads would otherwise share it).
        with self._api_lock:
            return response_parts(self._api(event, LocalContext("pancscan-api", memory_limit_in_mb=256)))

    def config(self) -> dict:
        return {"apiUrl": self.url, "maxUploadBytes": Settings.from_env().max_upload_bytes, "auth": "jwt" if self.auth else "off"}


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default 5 resets connections when 20 clients arrive at once

    def handle_error(self, request, client_address):
        # a browser that closes a connection early is not an error worth a traceback
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


def _finishes(step, seconds: float) -> bool:
    """Run `step` in a daemon thread; True if it returned within `seconds`."""
    worker = threading.Thread(target=step, name=f"stop-{getattr(step, '__name__', 'part')}", daemon=True)
    worker.start()
    worker.join(seconds)
    return not worker.is_alive()


class StopSignals:
    """SIGINT (Ctrl-C) and SIGTERM (`kill`, service managers), recorded from the moment this is made:
    one that arrives while the stack is still starting stops it as soon as it has started.

    The kernel may hand a process-directed signal to any thread. Python runs its handler on the main
    thread only, and only when that thread runs bytecode, so an untimed wait (Event().wait()) may
    never wake. ``wait`` sleeps in short steps, so the handler runs within a fraction of a second."""

    def __init__(self) -> None:
        self.received: list[int] = []
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda signum, _frame: self.received.append(signum))

    def wait(self) -> int:
        while not self.received:
            time.sleep(0.2)
        return self.received[0]


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as probe:
        # as the servers themselves bind: connections of a stack just stopped do not count
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _gateway(stack: LocalStack) -> type[BaseHTTPRequestHandler]:
    headers_for_site = security_headers(stack.aws_endpoint)

    class Gateway(BaseHTTPRequestHandler):
        server_version = "pancscan-local"
        sys_version = ""

        def log_message(self, format, *args):  # paths carry scan ids only; keep the console quiet
            pass

        def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _route(self) -> None:
            parts = urlsplit(self.path)
            if stack.auth and parts.path.startswith("/local-auth/"):
                self._auth(parts.path)
            elif parts.path.startswith("/v1/"):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                try:
                    answer = stack.call_api(self.command, parts.path, parts.query, dict(self.headers), body, self.client_address[0])
                except Exception as error:  # what API Gateway answers when the function fails
                    print(f"api error: {type(error).__name__}", flush=True)
                    answer = (500, {"Content-Type": "application/json"}, b'{"message":"Internal Server Error"}')
                self._send(*answer)
            elif self.command in ("GET", "HEAD"):
                self._static(parts.path)
            else:
                self._send(405, {"Content-Type": "text/plain"}, b"method not allowed")

        def _auth(self, path: str) -> None:
            """The user pool's token endpoint and JWKS, as Cognito serves them."""
            if path == "/local-auth/.well-known/jwks.json" and self.command == "GET":
                return self._send(200, {"Content-Type": "application/json"}, json.dumps(stack.issuer.jwks).encode())
            if path == "/local-auth/oauth2/token" and self.command == "POST":
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, answer = stack.issuer.token_response(dict(self.headers), body)
                return self._send(status, {"Content-Type": "application/json", "Cache-Control": "no-store"}, json.dumps(answer).encode())
            self._send(404, {"Content-Type": "application/json"}, b'{"error":"not_found"}')

        def _static(self, path: str) -> None:
            if path == "/config.json":
                body = json.dumps(stack.config()).encode()
                return self._send(200, {"Content-Type": "application/json", "Cache-Control": "no-store", **headers_for_site}, body)
            target = (SITE / (path.lstrip("/") or "index.html")).resolve()
            if not target.is_relative_to(SITE.resolve()) or not target.is_file():
                return self._send(404, {"Content-Type": "text/plain", **headers_for_site}, b"not found")
            kind = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
            self._send(200, {"Content-Type": kind, **headers_for_site}, target.read_bytes())

        def __getattr__(self, name: str):
            # every method, standard or not, goes to the API as API Gateway would send it
            if name.startswith("do_"):
                return self._route
            raise AttributeError(name)

    return Gateway


def serve(host: str, port: int, s3_port: int, auth: bool = False, research_days: int = 0) -> int:
    """Run the stack until SIGINT or SIGTERM; exit status 0 once every part has stopped."""
    stop_signals = StopSignals()
    stack = LocalStack(host, port, s3_port, auth=auth, research_days=research_days).start()
    print(f"PancScan (research software, not a medical device) is running:\n"
          f"  site  {stack.url}/\n  API   {stack.url}/v1/health\n  AWS stand-in (moto) {stack.aws_endpoint}", flush=True)
    # what the AWS tools need to reach the stand-in (moto accepts any credentials)
    aws_env = " ".join(f"{k}={v}" for k, v in stack.environment().items() if k.startswith("AWS_"))
    if auth:
        client_id, secret = stack.hospital
        print(f"  hospital clients only (AuthMode jwt); user pool {stack.issuer.pool_id}\n"
              f"  a local hospital client: PANCSCAN_TOKEN_URL={stack.issuer.token_url} "
              f"PANCSCAN_CLIENT_ID={client_id} PANCSCAN_CLIENT_SECRET={secret}\n"
              f"  more clients: {aws_env} python -m pancscan_local.hospital_client --user-pool-id {stack.issuer.pool_id} add <name>",
              flush=True)
    if research_days:
        print(f"  research retention {research_days} days; export: {aws_env} pancscan export-results --table {RESEARCH_TABLE}",
              flush=True)
    print("Ctrl-C stops it.", flush=True)
    signum = stop_signals.wait()
    print(f"stopping ({signal.Signals(signum).name})", flush=True)
    stuck = stack.stop()
    if stuck:
        print(f"did not stop in time, abandoned: {', '.join(stuck)}", flush=True)
        return 1
    return 0
