"""Property: whatever the list, the DNC entries, the time and the count asked, the lease never
returns a DNC number or a number outside its window in any of its zones."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dialer.lists import ColumnMapping
from dialer.policy import CampaignSettings
from dialer.store import DialerStore
from dialer.windows import CallingWindow

NUMBERS = ["+1 212 555 0100", "+1 208 555 0101", "+1 605 555 0102", "+1 907 555 0103",
           "+1 808 555 0104", "+44 7400 123456", "+33 6 12 34 56 78", "+61 2 9876 5432",
           "+800 1234 5678", "+1 800 555 0199", "+7 912 345 6789", "+81 3 1234 5678"]
ZONE_COL = ["", "", "", "Asia/Tokyo", "Europe/Paris", "America/Chicago"]

contact = st.tuples(st.sampled_from(NUMBERS), st.sampled_from(NUMBERS),
                    st.sampled_from(ZONE_COL), st.integers(0, 3))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(contacts=st.lists(contact, min_size=1, max_size=12),
       dnc=st.sets(st.sampled_from(NUMBERS), max_size=6),
       campaign_dnc=st.sets(st.sampled_from(NUMBERS), max_size=3),
       nows=st.lists(st.integers(1_767_225_600, 1_798_761_600), min_size=1, max_size=3),
       count=st.integers(0, 20),
       start=st.integers(0, 20), length=st.integers(1, 12))
def test_lease_never_returns_dnc_or_outside_window(
        contacts: list[tuple[str, str, str, int]], dnc: set[str], campaign_dnc: set[str],
        nows: list[int], count: int, start: int, length: int) -> None:
    window = CallingWindow.daily(f"{start:02d}:00", f"{min(start + length, 24):02d}:00")
    with tempfile.TemporaryDirectory() as tmp:
        store = DialerStore(f"sqlite:///{Path(tmp) / 'p.db'}")
        info = store.create_campaign("p", CampaignSettings(region="US", window=window),
                                     now=0.0)
        lines = ["a,b,tz,prio"] + [f"{a},{b},{tz},{p}" for a, b, tz, p in contacts]
        store.import_contacts("p", io.BytesIO("\n".join(lines).encode()),
                              ColumnMapping(("a", "b"), timezone="tz", priority="prio"),
                              now=0.0)
        blocked = {store.dnc.add(n, now=0.0) for n in dnc}
        blocked |= {store.dnc.add(n, now=0.0, campaign_id=info.id) for n in campaign_dnc}
        for now in sorted(nows):
            leases = store.lease("p", now=float(now), count=count, owner="x")
            assert len(leases) <= count
            for le in leases:
                assert le.e164 not in blocked
                assert le.zones, "a number with no known zone was leased"
                assert window.is_open(le.zones, float(now))
                store.record_outcome(le, "busy", now=float(now) + 10)
