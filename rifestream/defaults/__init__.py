"""Package data: the embedded default pipeline (``default.toml``)."""
