"""gifcat: categorise GIFs at upload time with the cheapest stage that is right."""

__version__ = "0.1.0"
