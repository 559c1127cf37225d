"""telephony.dsp."""
