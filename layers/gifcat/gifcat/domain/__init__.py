"""The domain: the model, taxonomy, stages and cascade, and what a result says. It imports nothing
outside gifcat.domain and gifcat.config: no AWS SDK, no model runtime, no HTTP client."""
