"""telephony.rtp."""
