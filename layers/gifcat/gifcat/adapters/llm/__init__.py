"""The LLM endpoint: an OpenAI-compatible client, its credentials and its call cache."""
