"""The local JWT authorizer checks what API Gateway's does, in its order and with its answers."""

import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from pancscan_local.auth import Denied, JwtConfiguration, authorization_header, authorize, event_authorizer

ISSUER = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_pool"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
JWKS = {"keys": [{**json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(KEY.public_key())), "kid": "k1", "alg": "RS256"}]}
CONFIG = JwtConfiguration(ISSUER, ("hospital-a", "hospital-b"), JWKS)
NOW = 1_800_000_000


def claims(**changes):
    base = {"iss": ISSUER, "client_id": "hospital-a", "sub": "hospital-a", "token_use": "access",
            "scope": "pancscan/submit pancscan/read", "iat": NOW - 10, "exp": NOW + 3600}
    return {k: v for k, v in (base | changes).items() if v is not None}


def signed(payload, key=KEY, kid="k1", algorithm="RS256"):
    return jwt.encode(payload, key, algorithm=algorithm, headers={"kid": kid})


def refusal(header, scopes=("pancscan/read",)):
    with pytest.raises(Denied) as denied:
        authorize(header, CONFIG, scopes, now=NOW)
    return denied.value.status, denied.value.headers["www-authenticate"]


def test_a_cognito_access_token_with_the_scope_passes_with_or_without_bearer():
    token = signed(claims())
    assert authorize(f"Bearer {token}", CONFIG, ("pancscan/read",), now=NOW)["client_id"] == "hospital-a"
    assert authorize(token, CONFIG, ("pancscan/read",), now=NOW)["client_id"] == "hospital-a"
    assert authorize(signed(claims(scope=None, scp="pancscan/read")), CONFIG, ("pancscan/read",), now=NOW)


@pytest.mark.parametrize("header, reason", [
    (None, "no token"),
    ("Bearer ", "no token"),
    ("Bearer abc.def.ghi", "signature or form"),
    (signed(claims(), key=OTHER_KEY), "signature or form"),  # right kid, wrong key
    (signed(claims(), kid="k2"), "not signed by a key"),
    (signed(claims(), key="a-shared-secret-of-32-bytes-or-more!", algorithm="HS256"), "signature or form"),  # no HMAC
    (jwt.encode(claims(), None, algorithm="none", headers={"kid": "k1"}), "signature or form"),
    (signed(claims(iss=ISSUER + "x")), "valid issuer"),
    (signed(claims(client_id="hospital-z")), "valid audience"),
    (signed(claims(aud="someone-else")), "valid audience"),  # aud, when present, is what counts
    (signed(claims(exp=NOW)), "expired"),
    (signed(claims(exp=None)), "expired"),
    (signed(claims(nbf=NOW + 60)), "not valid yet"),
    (signed(claims(iat=NOW + 60)), "in the future"),
    (signed(claims(aud=[["nested"]])), "valid audience"),  # odd claim types are refused, never a crash
    (signed(claims(exp="tomorrow")), "expired"),
])
def test_invalid_tokens_get_401(header, reason):
    status, challenge = refusal(header)
    assert status == 401 and 'error="invalid_token"' in challenge and reason in challenge


def test_a_valid_token_without_the_routes_scope_gets_403():
    status, challenge = refusal(signed(claims(scope="pancscan/submit")))
    assert status == 403 and 'error="insufficient_scope"' in challenge and 'scope="pancscan/read"' in challenge
    assert refusal(signed(claims(scope=None)))[0] == 403


def test_aud_admits_when_it_is_in_the_audience():
    assert authorize(signed(claims(aud="hospital-b", client_id="not-listed")), CONFIG, (), now=NOW)


def test_the_event_carries_string_claims_and_the_scopes():
    context = event_authorizer(claims())
    assert context["jwt"]["claims"]["exp"] == str(NOW + 3600) and context["jwt"]["claims"]["client_id"] == "hospital-a"
    assert context["jwt"]["scopes"] == ["pancscan/submit", "pancscan/read"]


def test_the_denial_body_is_api_gateways():
    denied = Denied(401, "x")
    assert json.loads(denied.body) == {"message": "Unauthorized"}
    assert json.loads(Denied(403, "x", "s").body) == {"message": "Forbidden"}


@pytest.mark.parametrize("headers, found", [
    ({"Authorization": "Bearer a"}, "Bearer a"),
    ({"authorization": "Bearer b", "Host": "x"}, "Bearer b"),
    ({"Host": "x", "AUTHORIZATION": "c"}, "c"),
    ({"X-Authorization": "d"}, None),
    ({}, None),
])
def test_the_authorization_header_is_found_whatever_the_case_of_its_name(headers, found):
    assert authorization_header(headers) == found


# --- the local JWT authorizer ---------------------------------------------------------------------

def denial(header, scopes=("pancscan/read",), now=NOW) -> Denied:
    with pytest.raises(Denied) as denied:
        authorize(header, CONFIG, scopes, now=now)
    return denied.value


def challenge(description: str, scope: str = "", error: str = "invalid_token") -> str:
    return f'Bearer scope="{scope}" error="{error}" error_description="{description}"'


@pytest.mark.parametrize("header, description", [
    (None, "no token in the Authorization header"),
    ("Bearer   ", "no token in the Authorization header"),
    (signed(claims(), kid="k2"), "the token is not signed by a key of the issuer"),
    ("Bearer abc.def.ghi", "the token's signature or form is invalid"),
    (signed(claims(iss="https://elsewhere.example")), "the token does not have a valid issuer"),
    (signed(claims(client_id="hospital-z")), "the token does not have a valid audience"),
    (signed(claims(exp=NOW - 1)), "the token has expired"),
    (signed(claims(nbf=NOW + 60)), "the token is not valid yet"),
    (signed(claims(iat=NOW + 60)), "the token was issued in the future"),
])
def test_each_401_names_its_reason_in_the_challenge_header(header, description):
    denied = denial(header)
    assert denied.status == 401
    assert str(denied) == description
    assert denied.headers == {"Content-Type": "application/json", "www-authenticate": challenge(description)}
    assert json.loads(denied.body) == {"message": "Unauthorized"}


def test_a_403_lists_every_expected_scope_in_the_description_and_the_scope_attribute():
    scopes = ("pancscan/read", "pancscan/admin")
    denied = denial(signed(claims(scope="pancscan/submit")), scopes)
    assert denied.status == 403
    assert str(denied) == "expected scopes: [pancscan/read pancscan/admin]"
    assert denied.headers == {
        "Content-Type": "application/json",
        "www-authenticate": challenge("expected scopes: [pancscan/read pancscan/admin]",
                                      scope="pancscan/read pancscan/admin", error="insufficient_scope"),
    }
    assert json.loads(denied.body) == {"message": "Forbidden"}


def test_without_now_the_clock_decides():
    now = time.time()
    token = signed(claims(iat=int(now) - 10, exp=int(now) + 3600))
    assert authorize(token, CONFIG, ("pancscan/read",))["client_id"] == "hospital-a"
    assert denial(signed(claims(iat=int(now) - 7200, exp=int(now) - 3600)), now=None).status == 401


def test_a_token_is_valid_from_its_nbf_second_on():
    assert authorize(signed(claims(nbf=NOW)), CONFIG, ("pancscan/read",), now=NOW)
    assert str(denial(signed(claims(nbf=NOW + 1)))) == "the token is not valid yet"


@pytest.mark.parametrize("nbf", ["yesterday", True])
def test_a_non_numeric_nbf_is_refused(nbf):
    assert str(denial(signed(claims(nbf=nbf)))) == "the token is not valid yet"


def test_a_token_issued_this_second_is_accepted_one_issued_next_second_is_not():
    assert authorize(signed(claims(iat=NOW)), CONFIG, ("pancscan/read",), now=NOW)
    assert str(denial(signed(claims(iat=NOW + 1)))) == "the token was issued in the future"


def test_an_aud_list_admits_when_any_of_its_entries_is_in_the_audience():
    token = signed(claims(aud=["someone-else", "hospital-b"], client_id=None))
    assert authorize(token, CONFIG, ("pancscan/read",), now=NOW)["aud"] == ["someone-else", "hospital-b"]
    assert str(denial(signed(claims(aud=["someone-else"], client_id="hospital-a")))) == (
        "the token does not have a valid audience")


def test_the_event_has_no_scopes_when_the_token_has_none():
    assert event_authorizer(claims(scope=None))["jwt"]["scopes"] is None
    assert event_authorizer(claims(scope=""))["jwt"]["scopes"] is None
