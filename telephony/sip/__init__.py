"""telephony.sip."""
