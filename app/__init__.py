"""RISE Annotate: the application layer (services, UI, CLI, exporters, training worker)."""
