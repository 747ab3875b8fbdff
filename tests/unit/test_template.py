"""template.yaml: valid for cfn-lint, and the guarantees the pipeline relies on."""

import shutil
import subprocess
import sys
from pathlib import Path

from pancscan_local.template import REPO, TEMPLATE, api_routes, authorizer_config, load_template, resolve, resource, upload_prefix


def statements(function: str, research: bool = False) -> list[dict]:
    policies = resolve(resource(function)["Policies"], {}, {"ResearchOn": research})
    return [s for policy in policies for s in policy["Statement"]]


def actions_of(function: str, research: bool = False) -> set[str]:
    actions = set()
    for statement in statements(function, research):
        actions |= set([statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"])
    return actions


def test_cfn_lint_passes():
    lint = shutil.which("cfn-lint", path=str(Path(sys.executable).parent)) or "cfn-lint"
    result = subprocess.run([lint, str(TEMPLATE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def s3_grants(function: str) -> dict[str, set[str]]:
    """S3 action -> the resources (after the bucket's name) it is granted on, with the prefix condition if any."""
    grants = {}
    for statement in statements(function):
        actions = [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]
        for action in (a for a in actions if a.startswith("s3:")):
            where = statement["Resource"]["Fn::Sub"].split("${AWS::Region}", 1)[1]
            prefix = statement.get("Condition", {}).get("StringLike", {}).get("s3:prefix")
            grants.setdefault(action, set()).add(where + (f"?prefix={prefix}" if prefix else ""))
    return grants


def test_inference_runs_only_on_uploads_and_writes_only_slice_sheets_outside_them():
    assert upload_prefix() == "uploads/"
    assert actions_of("InferenceFunction") == {"s3:GetObject", "s3:DeleteObject", "s3:PutObject", "s3:ListBucket", "dynamodb:UpdateItem"}
    assert s3_grants("InferenceFunction") == {
        "s3:GetObject": {"/uploads/*"},
        "s3:DeleteObject": {"/uploads/*", "/results/*"},
        "s3:PutObject": {"/results/*"},  # never under uploads/: its own writes cannot trigger it
        "s3:ListBucket": {"?prefix=results/*"},
    }


def test_the_api_signs_uploads_and_reads_and_deletes_slice_sheets_only():
    assert s3_grants("ApiFunction") == {
        "s3:PutObject": {"/uploads/*"},
        "s3:GetObject": {"/results/*"},
        "s3:DeleteObject": {"/results/*"},
        "s3:ListBucket": {"?prefix=results/*"},
    }


def test_bucket_is_private_encrypted_tls_only_and_expires_leftover_uploads_and_results():
    bucket = resource("UploadBucket")
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    uploads, results = bucket["LifecycleConfiguration"]["Rules"]
    assert uploads["Prefix"] == "uploads/" and uploads["ExpirationInDays"] == 1
    # slice sheets live as long as the result's item (its TTL is ResultTtlDays too)
    assert results["Prefix"] == "results/" and results["ExpirationInDays"] == {"Ref": "ResultTtlDays"}
    (tls,) = resource("UploadBucketPolicy")["PolicyDocument"]["Statement"]
    assert tls["Effect"] == "Deny" and tls["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_cors_is_the_site_origin_never_a_wildcard():
    origins = resource("UploadBucket")["CorsConfiguration"]["CorsRules"][0]["AllowedOrigins"]
    api_origins = resource("HttpApi")["CorsConfiguration"]["AllowOrigins"]
    # the SiteOrigin parameter (a custom domain) or else the stack's own CloudFront domain
    expected = [{"Fn::If": ["HasSiteOrigin", {"Ref": "SiteOrigin"}, {"Fn::Sub": "https://${SiteDistribution.DomainName}"}]}]
    assert origins == api_origins == expected
    parameter = load_template()["Parameters"]["SiteOrigin"]
    assert "*" not in parameter["Default"] and "[^*/]" in parameter["AllowedPattern"]


def test_table_has_ttl_encryption_and_point_in_time_recovery():
    table = resource("ScansTable")
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert table["SSESpecification"]["SSEEnabled"] is True
    assert table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True


def test_every_function_has_a_log_group_with_retention():
    groups = [r["Properties"] for r in load_template()["Resources"].values() if r["Type"] == "AWS::Logs::LogGroup"]
    assert all(g.get("RetentionInDays") for g in groups)
    named = {g["LogGroupName"]["Fn::Sub"] for g in groups if "LogGroupName" in g}
    assert named == {"/aws/lambda/${ApiFunction}", "/aws/lambda/${InferenceFunction}"}


def test_failed_invocations_are_retried_then_kept_in_an_encrypted_queue():
    config = resource("InferenceFunction")["EventInvokeConfig"]
    assert config["MaximumRetryAttempts"] == 2 and config["MaximumEventAgeInSeconds"] <= 6 * 3600
    assert config["DestinationConfig"]["OnFailure"] == {"Type": "SQS", "Destination": {"Fn::GetAtt": ["FailedEventsQueue", "Arn"]}}
    assert resource("FailedEventsQueue")["SqsManagedSseEnabled"] is True
    # the claim's lease matches the timeout it stands for
    inference = resource("InferenceFunction")
    assert int(inference["Environment"]["Variables"]["PROCESSING_LEASE_SECONDS"]) == inference["Timeout"]


def test_alarms_watch_errors_throttles_and_the_failed_events_queue():
    alarms = [r["Properties"] for r in load_template()["Resources"].values() if r["Type"] == "AWS::CloudWatch::Alarm"]
    watched = {(a["MetricName"], a["Dimensions"][0]["Value"].get("Ref") or a["Dimensions"][0]["Value"]["Fn::GetAtt"][0]) for a in alarms}
    assert {("Errors", "InferenceFunction"), ("Throttles", "InferenceFunction"), ("Errors", "ApiFunction"),
            ("ApproximateNumberOfMessagesVisible", "FailedEventsQueue")} <= watched
    assert all(a["AlarmActions"] == [{"Ref": "AlarmTopic"}] for a in alarms)


def test_research_retention_is_off_by_default_and_only_adds_writing_its_own_table():
    parameters = load_template()["Parameters"]
    assert parameters["ResearchRetentionDays"]["Default"] == 0
    assert load_template()["Resources"]["ResearchTable"]["Condition"] == "ResearchOn"
    assert actions_of("InferenceFunction", research=True) - actions_of("InferenceFunction") == {"dynamodb:PutItem"}
    research_rights = [s for s in statements("ApiFunction", research=True) if s not in statements("ApiFunction")]
    assert research_rights == [{"Effect": "Allow", "Action": "dynamodb:DeleteItem", "Resource": {"Fn::GetAtt": ["ResearchTable", "Arn"]}}]
    (put,) = [s for s in statements("InferenceFunction", research=True) if s["Action"] == "dynamodb:PutItem"]
    assert put["Resource"] == {"Fn::GetAtt": ["ResearchTable", "Arn"]}
    assert resource("ResearchTable")["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}


def test_with_auth_on_the_scan_routes_need_a_hospital_token_with_their_scope():
    assert load_template()["Parameters"]["AuthMode"]["Default"] == "off"
    scopes = {f"{r.method} {r.path}": (r.authorization, r.scopes) for r in api_routes(auth_on=True)}
    assert scopes == {
        "POST /v1/scans": ("JWT", ("pancscan/submit",)),
        "GET /v1/scans/{scan_id}": ("JWT", ("pancscan/read",)),
        "GET /v1/scans/{scan_id}/slices": ("JWT", ("pancscan/read",)),
        "DELETE /v1/scans/{scan_id}": ("JWT", ("pancscan/read",)),
        "ANY /v1/{proxy+}": ("NONE", ()),  # health, the OpenAPI document, 405s
    }
    assert {r.authorization for r in api_routes(auth_on=False)} == {"NONE"}
    jwt = authorizer_config()
    assert jwt["Issuer"] == {"Fn::Sub": "https://cognito-idp.${AWS::Region}.amazonaws.com/${HospitalUserPool}"}
    assert jwt["Audience"] == {"Ref": "HospitalClientIds"}
    server = resource("HospitalResourceServer")
    assert server["Identifier"] == "pancscan" and {s["ScopeName"] for s in server["Scopes"]} == {"submit", "read"}
    for name in ("HospitalUserPool", "HospitalUserPoolDomain", "HospitalResourceServer", "HospitalAuthorizer"):
        assert load_template()["Resources"][name]["Condition"] == "AuthOn"


def test_the_local_gateway_picks_routes_as_api_gateway_does():
    routes = api_routes(auth_on=True)
    def route(method, path):
        return next(f"{r.method} {r.path}" for r in routes if r.matches(method, path))
    assert route("GET", "/v1/scans/0f1e") == "GET /v1/scans/{scan_id}"
    assert route("POST", "/v1/scans") == "POST /v1/scans"
    assert route("POST", "/v1/scans/0f1e") == "ANY /v1/{proxy+}"  # no such method: the public catch-all answers 405
    assert route("GET", "/v1/scans/a/b") == "ANY /v1/{proxy+}"
    assert not any(r.matches("GET", "/v2/scans") for r in routes)


def test_api_is_throttled():
    settings = resource("HttpApiStage")["DefaultRouteSettings"]
    assert settings["ThrottlingRateLimit"] > 0 and settings["ThrottlingBurstLimit"] > 0


def test_the_policy_scanner_finds_nothing_unwaived():
    # checkov lives in its own environment (make tools); every waiver in template.yaml says why
    checkov = REPO / ".tools" / "bin" / "checkov"
    assert checkov.exists(), "checkov is missing: `make tools` (make test runs it) installs it"
    result = subprocess.run([str(checkov), "-f", str(TEMPLATE), "--framework", "cloudformation", "--compact", "--quiet", "--skip-download"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:]
    skipped = [s for r in load_template()["Resources"].values() for s in r.get("Metadata", {}).get("checkov", {}).get("skip", [])]
    assert skipped and all(len(s.get("comment", "")) > 20 for s in skipped)


def test_the_site_is_private_behind_cloudfront_with_the_same_security_headers_as_locally():
    from pancscan_local.stack import security_headers

    assert all(resource("SiteBucket")["PublicAccessBlockConfiguration"].values())
    (reads, tls) = resource("SiteBucketPolicy")["PolicyDocument"]["Statement"]
    assert reads["Principal"] == {"Service": "cloudfront.amazonaws.com"} and reads["Action"] == "s3:GetObject"
    assert tls["Effect"] == "Deny"
    distribution = resource("SiteDistribution")["DistributionConfig"]
    assert distribution["DefaultCacheBehavior"]["ViewerProtocolPolicy"] == "redirect-to-https"
    assert distribution["Origins"][0]["OriginAccessControlId"] == {"Fn::GetAtt": ["SiteOriginAccessControl", "Id"]}
    headers = resource("SiteHeadersPolicy")["ResponseHeadersPolicyConfig"]["SecurityHeadersConfig"]
    deployed = headers["ContentSecurityPolicy"]["ContentSecurityPolicy"]["Fn::Sub"]
    local = security_headers("http://127.0.0.1:5000")["Content-Security-Policy"]
    for directive in local.split("; "):
        if not directive.startswith("connect-src"):  # the origins differ; the rest must not
            assert directive in deployed


def test_sam_validate_lint_is_clean():
    sam = REPO / ".sam-cli" / "bin" / "sam"
    assert sam.exists(), "aws-sam-cli is missing: `make sam-cli` (make test runs it) installs it in its own environment"
    result = subprocess.run([str(sam), "validate", "--lint", "-t", str(TEMPLATE)], capture_output=True, text=True, timeout=300,
                            env={"PATH": "/usr/bin:/bin", "SAM_CLI_TELEMETRY": "0", "AWS_DEFAULT_REGION": "us-east-1", "HOME": str(REPO / ".sam-cli")})
    assert result.returncode == 0 and "is a valid SAM Template" in result.stdout + result.stderr, result.stdout + result.stderr


def test_samconfig_sets_only_parameters_the_template_has_with_allowed_values():
    import tomllib

    config = tomllib.loads((REPO / "samconfig.toml").read_text())
    parameters = load_template()["Parameters"]
    for environment in ("default", "prod"):
        for pair in config[environment]["deploy"]["parameters"]["parameter_overrides"].split():
            name, value = pair.split("=", 1)
            assert name in parameters, name
            assert value in [str(v) for v in parameters[name].get("AllowedValues", [value])], pair
