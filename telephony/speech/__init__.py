"""telephony.speech."""
