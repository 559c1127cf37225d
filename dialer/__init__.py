"""The predictive dialer: campaigns, lists, compliance, pacing, callbacks, simulator."""
