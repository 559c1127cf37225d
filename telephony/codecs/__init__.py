"""telephony.codecs."""
