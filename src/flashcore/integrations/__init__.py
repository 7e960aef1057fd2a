"""Glue for libraries that call attention for you (``flashcore.integrations.transformers``).
Nothing here is imported by ``import flashcore``."""
