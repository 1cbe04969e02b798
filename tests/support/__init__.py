"""Test helpers shared across suites (the scripted OpenAI-compatible server, ...)."""
