"""Sources and sinks, and the ZeroMQ feed (imports nothing of the package above it).

Entry points: ``rifestream.io.sources.open_source`` and
``rifestream.io.sinks.open_sink``; which class handles a URL is decided in one
place, ``rifestream.io.registry`` (one module per kind, each a ``Source`` or
``Sink`` of ``source_base``/``sink_base``). The feed format and its subscriber
live in ``rifestream.io.zmq_feed``; the frame types in ``rifestream.io.frames``;
a lost live input or output raises ``rifestream.io.stream_errors.SourceLost`` /
``SinkLost``. This package module imports nothing, so importing the frame
types stays cheap.
"""
