"""The Dialtone node: the ``dialtone`` command line, the node's configuration and wiring
(SIP/RTP user agent, IVR application, routing bus), and the event log's schema.

Nothing in ``telephony``, ``ivr_flows``, ``routing`` or ``dialer`` imports this package: it sits
on top and builds a node from them (``tests/unit/test_import_direction.py``).
"""

__version__ = "0.1.0"
