"""The outbound fence as the unit tests' local servers need it: 127.0.0.0/8 allowed.

The operator refuses loopback by default; tests that talk to a real server on 127.0.0.1
use this fence, as the e2e operator sets OUTBOUND_ALLOW_CIDRS=127.0.0.0/8.
"""

from __future__ import annotations

from modelmonitor.adapters.outbound import Outbound
from modelmonitor.core.outbound import OutboundPolicy

LOOPBACK_ALLOWED = Outbound(OutboundPolicy.parse(["127.0.0.0/8"]))
