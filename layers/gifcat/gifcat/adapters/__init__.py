"""Adapters: the outside world behind the ports. AWS (S3 objects, the results table, the state machine)
for the application's ports; the LLM endpoint and the embedding models for the domain's."""
