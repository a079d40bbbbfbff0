"""``udp://HOST:PORT[?pkt_size=1316&…]``: MPEG-TS over UDP, encoded for live.

Nothing answers a UDP send, so the sink cannot tell whether anyone receives:
a receiver that joins late starts at the next keyframe (the live encoder's GOP
is short). FFmpeg's own ``udp`` options (``pkt_size``, ``ttl``, ``localaddr``,
``buffer_size``) go in the URL's query.
"""

from __future__ import annotations

from rifestream.io.encoder_sink import LiveEncoderSink


class UdpSink(LiveEncoderSink):
    container_format = "mpegts"
