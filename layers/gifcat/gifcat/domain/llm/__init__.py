"""The LLM stage's domain side: the prompt it builds, the answer it accepts and its options."""
