"""``rtmp://HOST[:PORT]/APP/KEY`` (and ``rtmps://``): FLV pushed to an RTMP server, encoded for live."""

from __future__ import annotations

from rifestream.io.encoder_sink import LiveEncoderSink
from rifestream.io.endpoint import BadUrl, check_network_url
from rifestream.io.rtmp_probe import check_rtmp_server
from rifestream.io.sink_base import Encoding, OutputStream


class RtmpSink(LiveEncoderSink):
    """A push to an RTMP server. Before FFmpeg connects, the server must answer a handshake of our own
    within a deadline (``rtmp_probe``): FFmpeg's own connect could hang the whole process."""

    container_format = "flv"

    @classmethod
    def check_url(cls, url: str) -> None:
        end = check_network_url(url, needs_host=True)
        if len([part for part in end.path.split("/") if part]) < 2:
            raise BadUrl(
                url, f"an RTMP URL naming an application and a stream key: {end.scheme}://HOST[:PORT]/APP/ and the key"
            )

    @classmethod
    def open(cls, url: str, stream: OutputStream, encoding: Encoding) -> RtmpSink:
        if url.lower().startswith("rtmp://"):
            check_rtmp_server(url)
        return super().open(url, stream, encoding)
