"""PyAV sources and sinks and the ZeroMQ feed (imports nothing of the package above it)."""
