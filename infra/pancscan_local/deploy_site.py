"""After `sam deploy`: write the site's config.json from the stack's outputs, upload site/ to the
site bucket, and invalidate CloudFront's cache.

    python -m pancscan_local.deploy_site --stack pancscan-dev [--region eu-west-1]
"""

from __future__ import annotations

import argparse
import json
import mimetypes
import time

import boto3

from pancscan_local.template import REPO

SITE = REPO / "site"
mimetypes.add_type("text/javascript", ".js")  # modules must be served as JavaScript


def stack_outputs(cloudformation, stack: str) -> dict[str, str]:
    (description,) = cloudformation.describe_stacks(StackName=stack)["Stacks"]
    return {o["OutputKey"]: o["OutputValue"] for o in description.get("Outputs", [])}


def site_config(outputs: dict[str, str]) -> dict:
    return {"apiUrl": outputs["ApiUrl"], "maxUploadBytes": int(outputs["MaxUploadBytes"]),
            "auth": "jwt" if "UserPoolId" in outputs else "off"}  # UserPoolId exists with AuthMode jwt only


def upload_site(s3, bucket: str, config: dict) -> list[str]:
    """Every file of site/ with its content type, then config.json (never cached); the keys written."""
    written = []
    for path in sorted(p for p in SITE.rglob("*") if p.is_file()):
        key = path.relative_to(SITE).as_posix()
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        s3.put_object(Bucket=bucket, Key=key, Body=path.read_bytes(), ContentType=kind, CacheControl="max-age=300")
        written.append(key)
    s3.put_object(Bucket=bucket, Key="config.json", Body=json.dumps(config).encode(), ContentType="application/json",
                  CacheControl="no-store")
    return written + ["config.json"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stack", required=True)
    parser.add_argument("--region")
    args = parser.parse_args()
    session = boto3.Session(region_name=args.region)
    outputs = stack_outputs(session.client("cloudformation"), args.stack)
    written = upload_site(session.client("s3"), outputs["SiteBucketName"], site_config(outputs))
    session.client("cloudfront").create_invalidation(
        DistributionId=outputs["SiteDistributionId"],
        InvalidationBatch={"Paths": {"Quantity": 1, "Items": ["/*"]}, "CallerReference": str(time.time())},
    )
    print(f"{len(written)} files uploaded; the site is at {outputs['SiteUrl']}")


if __name__ == "__main__":
    main()
