"""Issue 12, finding 3: calls that never end.  500 callers vanish at once (no BYE, their
RTP just stops): every call ends by its media timeout, within that timeout plus a second,
the node's descriptors return to their baseline, and nothing is sent afterwards.

Before the teardown queue, ending a call flushed the SIP transport, which ended the next
call on the same stack (useragent ``_ended`` -> ``_drain_media_events`` -> ``_hangup`` ->
``transport.flush()`` -> ...): past ~200 calls ending in one tick it overflowed the stack
and calls were left half-ended, streaming RTP for ever.
"""

from __future__ import annotations

import pytest

from tests.conftest import free_port
from tests.vanish import VanishRig

pytestmark = pytest.mark.asyncio

CALLERS = 500
MEDIA_TIMEOUT = 1.0


async def test_500_vanished_callers_all_end_with_their_sockets_and_rtp() -> None:
    # the node streams RTP to 100 of them (enough to see any call that keeps streaming;
    # all 500 would take most of a core of this shared 2-core machine)
    rig = VanishRig(CALLERS, media_timeout=MEDIA_TIMEOUT, sip_port=free_port(),
                    caller_port=free_port(), rtp_base=24000, two_way=100)
    await rig.start()
    try:
        result = await rig.run()
    finally:
        await rig.close()
    assert result.calls == CALLERS
    assert result.fds_with_calls >= result.fds_baseline + 2 * CALLERS  # RTP + RTCP per call
    assert result.ended == CALLERS, result
    assert result.left == 0
    assert result.causes == {"media_timeout": CALLERS}
    # (the last packets left up to one 100 ms RTP interval before the vanishing)
    assert max(result.end_after_vanish_s) <= MEDIA_TIMEOUT + 1.0, result.end_after_vanish_s[-5:]
    assert result.fds_after == result.fds_baseline
    assert result.rtp_after_end == 0
