"""xmppd's XML layer: a restricted streaming parser (RFC 6120 §11) and a stream serializer."""

from xmppd.xml.parser import StreamHeader, StreamParser
from xmppd.xml.serializer import STREAM_END, serialize, stream_header

__all__ = ["STREAM_END", "StreamHeader", "StreamParser", "serialize", "stream_header"]
