"""Hospital app clients of a stack deployed with AuthMode jwt: add, list, remove.

    python -m pancscan_local.hospital_client --stack pancscan-prod add st-marys
    python -m pancscan_local.hospital_client --stack pancscan-prod list
    python -m pancscan_local.hospital_client --stack pancscan-prod remove <client id>

`add` prints the client's id and secret once (Cognito shows the secret again to administrators
only): hand them to the hospital over a channel fit for a password. The authorizer admits a client
once its id is in the stack's HospitalClientIds parameter and the stack is deployed again; the
The runbook (docs/deploy-and-operations.md) has the steps, rotation included. Locally (`pancscan serve --auth`) pass
--user-pool-id from its console and AWS_ENDPOINT_URL; every local client is admitted at once.
"""

from __future__ import annotations

import argparse
import sys

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from pancscan_local.deploy_site import stack_outputs
from pancscan_local.issuer import create_hospital_client


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hospital_client", description=__doc__.split("\n\n")[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--stack", help="the deployed stack (its UserPoolId output)")
    where.add_argument("--user-pool-id")
    parser.add_argument("--region")
    commands = parser.add_subparsers(dest="command", required=True)
    add = commands.add_parser("add", help="create a hospital's app client")
    add.add_argument("name", help="a short name for the hospital (no patient data), e.g. st-marys")
    commands.add_parser("list", help="the pool's app clients")
    remove = commands.add_parser("remove", help="delete an app client: no new tokens; tokens already issued work until they "
                                                 "expire (60 min) or its id leaves HospitalClientIds")
    remove.add_argument("client_id")
    args = parser.parse_args(argv)

    try:
        run(args)
    except (BotoCoreError, ClientError) as error:  # no credentials, unknown pool or client, ...: one line, no traceback
        raise SystemExit(f"hospital_client: {error}") from None
    return 0


def run(args: argparse.Namespace) -> None:
    cognito = boto3.client("cognito-idp", region_name=args.region)
    outputs = stack_outputs(boto3.client("cloudformation", region_name=args.region), args.stack) if args.stack else {}
    pool_id = args.user_pool_id or outputs.get("UserPoolId")
    if not pool_id:
        raise SystemExit(f"stack {args.stack} has no UserPoolId output: deploy it with AuthMode=jwt first")
    if args.command == "add":
        client_id, secret = create_hospital_client(cognito, pool_id, args.name)
        print(f"client id:     {client_id}\nclient secret: {secret}")
        if outputs.get("TokenUrl"):
            print(f"token URL:     {outputs['TokenUrl']}")
        if args.stack:
            print("Next: add the client id to HospitalClientIds (samconfig.toml) and run `make deploy`.", file=sys.stderr)
    elif args.command == "list":
        for client in cognito.list_user_pool_clients(UserPoolId=pool_id, MaxResults=60)["UserPoolClients"]:
            print(f"{client['ClientId']}\t{client['ClientName']}")
    else:
        cognito.delete_user_pool_client(UserPoolId=pool_id, ClientId=args.client_id)
        if args.stack:
            print(f"deleted {args.client_id}; remove it from HospitalClientIds at the next deploy", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
