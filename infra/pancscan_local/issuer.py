"""The hospitals' user pool, locally: what Cognito does in AWS (AuthMode jwt). ``LocalIssuer`` makes a
key pair at start and serves its JWKS, and a client-credentials token endpoint that checks an app
client's secret, flows and scopes in the user pool (moto's cognito-idp, created as template.yaml
creates it) and signs access tokens shaped like Cognito's, for ``pancscan_local.auth`` to check.
"""

from __future__ import annotations

import base64
import hmac
import json
import time
import uuid
from urllib.parse import parse_qs

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from pancscan_local.auth import JwtConfiguration, authorization_header
from pancscan_local.template import resource

TOKEN_SECONDS = 3600  # Cognito's default access-token lifetime
POOL_NAME = "pancscan-local-hospitals"


class LocalIssuer:
    """A stand-in for the user pool's token endpoint and JWKS, over moto's cognito-idp."""

    def __init__(self, cognito, base_url: str):
        self.cognito = cognito
        self.issuer = f"{base_url}/local-auth"
        self.token_url = f"{self.issuer}/oauth2/token"
        self.pool_id = create_user_pool(cognito)
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._kid = uuid.uuid4().hex
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self._key.public_key()))
        self.jwks = {"keys": [{**public, "kid": self._kid, "alg": "RS256", "use": "sig"}]}

    def configuration(self) -> JwtConfiguration:
        """The authorizer's configuration. Its audience (HospitalClientIds when deployed) is, locally,
        every app client in the pool: adding a client locally admits it at once."""
        clients = self.cognito.list_user_pool_clients(UserPoolId=self.pool_id, MaxResults=60)["UserPoolClients"]
        return JwtConfiguration(self.issuer, tuple(c["ClientId"] for c in clients), self.jwks)

    def add_client(self, name: str) -> tuple[str, str]:
        """A hospital's app client, as `make hospital-client` creates one: (client id, secret)."""
        return create_hospital_client(self.cognito, self.pool_id, name)

    def sign(self, claims: dict) -> str:
        return jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": self._kid})

    def token_response(self, headers: dict[str, str], body: bytes, now: float | None = None) -> tuple[int, dict]:
        """POST /oauth2/token (client_credentials), answered as Cognito answers it."""
        now = int(time.time() if now is None else now)
        form = {k: v[0] for k, v in parse_qs(body.decode(errors="replace")).items()}
        client_id, secret = _basic_credentials(headers) or (form.get("client_id"), form.get("client_secret"))
        if form.get("grant_type") != "client_credentials":
            return 400, {"error": "unsupported_grant_type"}
        client = self._client(client_id)
        if client is None or not secret or not hmac.compare_digest(client.get("ClientSecret", ""), secret):
            return 400, {"error": "invalid_client"}
        if "client_credentials" not in client.get("AllowedOAuthFlows", []):
            return 400, {"error": "unauthorized_client"}
        allowed = client.get("AllowedOAuthScopes", [])
        asked = form["scope"].split() if form.get("scope") else allowed
        if not asked or not set(asked) <= set(allowed):
            return 400, {"error": "invalid_scope"}
        claims = {"sub": client_id, "token_use": "access", "scope": " ".join(asked), "auth_time": now, "iss": self.issuer,
                  "exp": now + TOKEN_SECONDS, "iat": now, "version": 2, "jti": str(uuid.uuid4()), "client_id": client_id}
        return 200, {"access_token": self.sign(claims), "expires_in": TOKEN_SECONDS, "token_type": "Bearer"}

    def _client(self, client_id: str | None) -> dict | None:
        if not client_id:
            return None
        try:
            return self.cognito.describe_user_pool_client(UserPoolId=self.pool_id, ClientId=client_id)["UserPoolClient"]
        except self.cognito.exceptions.ResourceNotFoundException:
            return None


def _basic_credentials(headers: dict[str, str]) -> tuple[str, str] | None:
    value = authorization_header(headers) or ""
    if not value.lower().startswith("basic "):
        return None
    try:
        client_id, _, secret = base64.b64decode(value[6:]).decode().partition(":")
    except ValueError:
        return None
    return client_id, secret


def create_user_pool(cognito) -> str:
    """The hospitals' user pool and its resource server (scopes), as template.yaml defines them."""
    pool_id = cognito.create_user_pool(PoolName=POOL_NAME)["UserPool"]["Id"]
    server = resource("HospitalResourceServer")
    cognito.create_resource_server(UserPoolId=pool_id, Identifier=server["Identifier"], Name=server["Name"],
                                   Scopes=server["Scopes"])
    return pool_id


def create_hospital_client(cognito, pool_id: str, name: str) -> tuple[str, str]:
    """One hospital's app client: client-credentials flow, both scopes, a generated secret."""
    server = resource("HospitalResourceServer")
    scopes = [f"{server['Identifier']}/{s['ScopeName']}" for s in server["Scopes"]]
    client = cognito.create_user_pool_client(
        UserPoolId=pool_id, ClientName=name, GenerateSecret=True, AllowedOAuthFlowsUserPoolClient=True,
        AllowedOAuthFlows=["client_credentials"], AllowedOAuthScopes=scopes,
        AccessTokenValidity=60, TokenValidityUnits={"AccessToken": "minutes"},
    )["UserPoolClient"]
    return client["ClientId"], client["ClientSecret"]
