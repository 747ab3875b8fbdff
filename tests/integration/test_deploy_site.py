"""The deploy step after `sam deploy`: config.json from the stack's outputs, site/ uploaded with
the right content types (moto stands in for S3)."""

import json

import boto3
from moto import mock_aws

from pancscan_local.deploy_site import SITE, site_config, upload_site

OUTPUTS = {"ApiUrl": "https://abc123.execute-api.eu-west-1.amazonaws.com/dev", "MaxUploadBytes": "209715200",
           "SiteBucketName": "site-bucket", "SiteDistributionId": "E123", "SiteUrl": "https://d111.cloudfront.net"}


def test_config_comes_from_the_stack_outputs():
    assert site_config(OUTPUTS) == {"apiUrl": OUTPUTS["ApiUrl"], "maxUploadBytes": 209715200, "auth": "off"}
    assert site_config(OUTPUTS | {"UserPoolId": "eu-west-1_x"})["auth"] == "jwt"


def test_the_site_is_uploaded_with_content_types_and_an_uncached_config(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        s3 = boto3.client("s3", region_name="eu-west-1")
        s3.create_bucket(Bucket="site-bucket", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        written = upload_site(s3, "site-bucket", site_config(OUTPUTS))
        assert {"index.html", "app.js", "dicom-preview.js", "style.css", "config.json"} <= set(written)
        assert len(written) == len([p for p in SITE.rglob("*") if p.is_file()]) + 1
        assert s3.head_object(Bucket="site-bucket", Key="app.js")["ContentType"] == "text/javascript"
        assert s3.head_object(Bucket="site-bucket", Key="index.html")["ContentType"] == "text/html"
        config = s3.get_object(Bucket="site-bucket", Key="config.json")
        assert config["CacheControl"] == "no-store"
        assert json.loads(config["Body"].read())["apiUrl"] == OUTPUTS["ApiUrl"]
