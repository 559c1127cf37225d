"""Dialtone telephony core: SIP, SDP, RTP/RTCP, codecs, DSP, speech, asyncio glue and the Call API.

Everything below ``telephony.sip``, ``telephony.rtp``, ``telephony.codecs`` and
``telephony.dsp`` is sans-IO: it takes bytes, events and ``now`` in and gives
bytes, events and timers out.  Only ``telephony.aio`` touches sockets and clocks.
"""

__version__ = "0.1.0"
