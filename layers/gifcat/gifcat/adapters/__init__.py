"""Adapters: the AWS side of the domain's ports (S3 objects, the results table, the state machine)."""
