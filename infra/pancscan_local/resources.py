"""Creates the bucket, table and upload notifications from template.yaml (tests and local stack)."""

from __future__ import annotations

from pancscan_local.template import bucket_settings, table_definition, upload_prefix


def create_resources(s3, dynamodb, *, bucket: str, table: str, site_origin: str) -> None:
    """``s3`` and ``dynamodb`` are boto3 clients (moto's, locally)."""
    s3.create_bucket(Bucket=bucket)
    settings = bucket_settings(site_origin)
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration=settings["cors"])
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration=settings["lifecycle"])
    s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration=settings["encryption"])
    s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=settings["public_access_block"])
    create_table(dynamodb, table, "ScansTable")


def create_table(dynamodb, name: str, resource: str) -> None:
    """A table as template.yaml's ``resource`` defines it (keys, billing, TTL)."""
    spec = table_definition(resource)
    dynamodb.create_table(TableName=name, **spec["create"])
    dynamodb.update_time_to_live(TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": spec["ttl_attribute"]})


def notify_queue(s3, sqs, *, bucket: str, queue: str) -> str:
    """Send the bucket's ObjectCreated events under the trigger's prefix to a queue; its URL.

    Locally a queue stands in for Lambda's S3 trigger: a dispatcher hands its records to the handler.
    """
    url = sqs.create_queue(QueueName=queue)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.put_bucket_notification_configuration(
        Bucket=bucket,
        NotificationConfiguration={"QueueConfigurations": [{
            "QueueArn": arn,
            "Events": ["s3:ObjectCreated:*"],
            "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": upload_prefix()}]}},
        }]},
    )
    return url
