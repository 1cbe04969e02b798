"""Application services: what the handlers do (triage, one later stage), written against ports."""
