"""telephony.codecs."""

from telephony.codecs.base import (
    Codec,
    CodecRegistry,
    codec_for_payload_type,
    codec_names,
    get_codec,
    register_codec,
)
from telephony.codecs.g711 import PcmaCodec, PcmuCodec
from telephony.codecs.plc import G711Plc, PlcConfig

__all__ = [
    "Codec",
    "CodecRegistry",
    "G711Plc",
    "PcmaCodec",
    "PcmuCodec",
    "PlcConfig",
    "codec_for_payload_type",
    "codec_names",
    "get_codec",
    "register_codec",
]
