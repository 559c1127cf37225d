"""telephony.aio."""
