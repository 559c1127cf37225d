"""The example contact-centre flow (``make run`` serves it)."""
