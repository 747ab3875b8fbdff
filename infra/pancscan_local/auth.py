"""API Gateway's JWT authorizer, locally (AuthMode jwt): ``authorize`` makes its checks, in its order
and with its answers: a token in the identity source, an RSA signature by a key of the issuer's JWKS
(by kid), the issuer, the audience (``aud``, or ``client_id`` when there is no ``aud``), expiry,
not-before, issued-at; then the route's scopes (``scope`` or ``scp``; at least one of them). The
tokens it checks come from ``pancscan_local.issuer``.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass

import jwt

RSA_ALGORITHMS = ["RS256", "RS384", "RS512"]  # API Gateway accepts RSA-signed tokens only


class Denied(Exception):
    """The authorizer's refusal: 401 (no valid token) or 403 (the token lacks the route's scope)."""

    def __init__(self, status: int, description: str, scope: str = ""):
        super().__init__(description)
        self.status = status
        error = "insufficient_scope" if status == 403 else "invalid_token"
        self.headers = {"Content-Type": "application/json",
                        "www-authenticate": f'Bearer scope="{scope}" error="{error}" error_description="{description}"'}
        self.body = json.dumps({"message": "Forbidden" if status == 403 else "Unauthorized"}).encode()


@dataclass(frozen=True)
class JwtConfiguration:
    issuer: str
    audience: tuple[str, ...]
    jwks: dict  # the issuer's keys; API Gateway fetches them from <issuer>/.well-known/jwks.json


def authorize(header: str | None, config: JwtConfiguration, scopes: tuple[str, ...], now: float | None = None) -> dict:
    """The token's claims, as API Gateway hands them to the function; raises Denied."""
    now = time.time() if now is None else now
    token = re.sub(r"(?i)^bearer(\s+|$)", "", (header or "").strip())
    if not token:
        raise Denied(401, "no token in the Authorization header")
    try:
        kid = jwt.get_unverified_header(token).get("kid")
        keys = {key["kid"]: key for key in config.jwks["keys"]}
        if kid not in keys:
            raise Denied(401, "the token is not signed by a key of the issuer")
        key = jwt.PyJWK(keys[kid]).key
        claims = jwt.decode(token, key, algorithms=RSA_ALGORITHMS,
                            options={"verify_exp": False, "verify_nbf": False, "verify_iat": False, "verify_aud": False})
    except jwt.PyJWTError:
        raise Denied(401, "the token's signature or form is invalid") from None
    if claims.get("iss") != config.issuer:
        raise Denied(401, "the token does not have a valid issuer")
    audience = claims["aud"] if "aud" in claims else claims.get("client_id")
    audiences = audience if isinstance(audience, list) else [audience]
    if not any(isinstance(a, str) and a in config.audience for a in audiences):
        raise Denied(401, "the token does not have a valid audience")
    if not _number(claims.get("exp")) or claims["exp"] <= now:
        raise Denied(401, "the token has expired")
    if "nbf" in claims and (not _number(claims["nbf"]) or claims["nbf"] > now):
        raise Denied(401, "the token is not valid yet")
    if "iat" in claims and (not _number(claims["iat"]) or claims["iat"] > now):
        raise Denied(401, "the token was issued in the future")
    granted = str(claims.get("scope") or claims.get("scp") or "").split()
    if scopes and not set(granted) & set(scopes):
        raise Denied(403, f"expected scopes: [{' '.join(scopes)}]", " ".join(scopes))
    return claims


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def event_authorizer(claims: dict) -> dict:
    """requestContext.authorizer of a payload 2.0 event: claims as strings, and the scopes."""
    return {"jwt": {"claims": {k: v if isinstance(v, str) else json.dumps(v) for k, v in claims.items()},
                    "scopes": str(claims.get("scope") or "").split() or None}}


def authorization_header(headers: dict[str, str]) -> str | None:
    """The Authorization header, whatever the case of its name (HTTP names are case-insensitive)."""
    return next((v for k, v in headers.items() if k.lower() == "authorization"), None)
