"""Reads template.yaml so that the local stack and the tests build what AWS would: one source."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "template.yaml"
NO_VALUE = {"Ref": "AWS::NoValue"}


class _CfnLoader(yaml.SafeLoader):
    pass


def _tag(loader: yaml.Loader, suffix: str, node: yaml.Node):
    # !Ref X -> {"Ref": X}; !GetAtt A.B -> {"Fn::GetAtt": [A, B]}; !Sub s -> {"Fn::Sub": s}; ...
    value = loader.construct_scalar(node) if isinstance(node, yaml.ScalarNode) else (
        loader.construct_sequence(node, deep=True) if isinstance(node, yaml.SequenceNode) else loader.construct_mapping(node, deep=True))
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _tag)


@lru_cache(maxsize=2)
def load_template(path: Path = TEMPLATE) -> dict:
    return yaml.load(path.read_text(), Loader=_CfnLoader)


def resource(name: str, template: dict | None = None) -> dict:
    return (template or load_template())["Resources"][name]["Properties"]


def resolve(value, parameters: dict, conditions: dict[str, bool] | None = None):
    """Replace {"Ref": parameter} by its value and {"Fn::If": [condition, a, b]} by its branch,
    recursively, dropping what resolves to AWS::NoValue; other intrinsics are left alone."""
    conditions = conditions or {}
    if isinstance(value, dict):
        if set(value) == {"Ref"} and value["Ref"] in parameters:
            return parameters[value["Ref"]]
        if set(value) == {"Fn::If"} and value["Fn::If"][0] in conditions:
            condition, when_true, when_false = value["Fn::If"]
            return resolve(when_true if conditions[condition] else when_false, parameters, conditions)
        resolved = {k: resolve(v, parameters, conditions) for k, v in value.items()}
        return {k: v for k, v in resolved.items() if v != NO_VALUE}
    if isinstance(value, list):
        return [v for v in (resolve(v, parameters, conditions) for v in value) if v != NO_VALUE]
    return value


def table_definition(name: str = "ScansTable", template: dict | None = None) -> dict:
    """create_table arguments and the TTL attribute of a table, as template.yaml has them."""
    props = resource(name, template)
    return {
        "create": {k: props[k] for k in ("AttributeDefinitions", "KeySchema", "BillingMode")},
        "ttl_attribute": props["TimeToLiveSpecification"]["AttributeName"],
    }


def bucket_settings(site_origin: str, template: dict | None = None) -> dict:
    """The upload bucket's CORS, lifecycle, encryption and public-access settings in S3 API shape."""
    ttl_days = (template or load_template())["Parameters"]["ResultTtlDays"]["Default"]
    props = resolve(resource("UploadBucket", template), {"SiteOrigin": site_origin, "ResultTtlDays": ttl_days}, {"HasSiteOrigin": True})
    cors = [
        {"AllowedOrigins": r["AllowedOrigins"], "AllowedMethods": r["AllowedMethods"],
         "AllowedHeaders": r.get("AllowedHeaders", []), "MaxAgeSeconds": r.get("MaxAge", 0)}
        for r in props["CorsConfiguration"]["CorsRules"]
    ]
    lifecycle = [
        {"ID": r["Id"], "Status": r["Status"], "Filter": {"Prefix": r["Prefix"]},
         "Expiration": {"Days": r["ExpirationInDays"]}}
        for r in props["LifecycleConfiguration"]["Rules"]
    ]
    return {
        "cors": {"CORSRules": cors},
        "lifecycle": {"Rules": lifecycle},
        "encryption": {"Rules": [{"ApplyServerSideEncryptionByDefault": r["ServerSideEncryptionByDefault"]}
                                 for r in props["BucketEncryption"]["ServerSideEncryptionConfiguration"]]},
        "public_access_block": props["PublicAccessBlockConfiguration"],
    }


def upload_prefix(template: dict | None = None) -> str:
    """The prefix the inference function's S3 trigger is limited to."""
    event = resource("InferenceFunction", template)["Events"]["Upload"]["Properties"]
    (rule,) = event["Filter"]["S3Key"]["Rules"]
    return rule["Value"]


@dataclass(frozen=True)
class Route:
    """One HTTP API route as API Gateway matches it ("GET /v1/scans/{scan_id}", "ANY /v1/{proxy+}")."""

    method: str
    path: str
    authorization: str  # NONE or JWT
    scopes: tuple[str, ...] = ()

    def matches(self, method: str, path: str) -> bool:
        return self.method in ("ANY", method) and re.fullmatch(self.pattern, path) is not None

    @property
    def pattern(self) -> str:
        # {name} is one path segment; {name+} (greedy) is the rest of the path
        parts = re.split(r"(\{[^}]+\})", self.path)
        return "".join(("[^/]+" if not p.endswith("+}") else ".+") if p.startswith("{") else re.escape(p) for p in parts)

    @property
    def specificity(self) -> tuple:
        # API Gateway's order: exact paths over path variables over greedy ones; a method over ANY
        return ("+}" in self.path, self.path.count("{"), self.method == "ANY")


def api_routes(auth_on: bool, template: dict | None = None) -> list[Route]:
    """The HTTP API's routes with their authorization, as deployed with AuthMode jwt (auth_on) or off,
    most specific first."""
    template = template or load_template()
    routes = []
    for name, spec in template["Resources"].items():
        if spec["Type"] == "AWS::ApiGatewayV2::Route":
            props = resolve(spec["Properties"], {}, {"AuthOn": auth_on})
            method, path = props["RouteKey"].split(" ", 1)
            routes.append(Route(method, path, props.get("AuthorizationType", "NONE"), tuple(props.get("AuthorizationScopes") or ())))
    return sorted(routes, key=lambda r: r.specificity)


def authorizer_config(template: dict | None = None) -> dict:
    """The JWT authorizer's configuration (issuer, audience) as template.yaml writes it."""
    return resource("HospitalAuthorizer", template)["JwtConfiguration"]
