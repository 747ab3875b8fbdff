"""The scans service: the scan's life (create, claim, finish, read, delete) and its stores (DynamoDB, S3), settings."""
