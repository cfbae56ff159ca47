"""The echo responder: the transport baseline for benchmarks and the torture tests.

It answers every request it takes with 200 OK and everything else with the
status RFC 3261 asks for: 416 for a Request-URI scheme it does not know, 420
for an unknown Require option, 405 for INVITE and REGISTER (it keeps no
calls and no bindings), 501 for an unknown method, 400/505/513 for malformed
input (from the endpoint), silence for ACK and for stray responses.
"""

from __future__ import annotations

from ..sip.checks import check_method, check_require, check_uri_scheme
from ..transport import IncomingRequest, SipEndpoint

ECHO_METHODS = frozenset(
    {"OPTIONS", "PUBLISH", "SUBSCRIBE", "NOTIFY", "MESSAGE", "INFO", "UPDATE", "BYE", "CANCEL", "ACK"}
)


class EchoNode:
    """A UAS that says 200 OK."""

    def __init__(self, endpoint: SipEndpoint) -> None:
        self.endpoint = endpoint
        endpoint.on_request(self.handle)

    def handle(self, incoming: IncomingRequest) -> None:
        request = incoming.request
        if request.method == "ACK":
            return
        rejection = (
            check_method(request, ECHO_METHODS)
            or check_uri_scheme(request)
            or check_require(request, supported=())
        )
        if rejection is not None:
            incoming.respond(rejection.status, rejection.reason, headers=rejection.headers)
            return
        if request.method == "CANCEL":
            if self.endpoint.layer.find_invite_for_cancel(request) is None:
                incoming.respond(481)
                return
        incoming.respond(200)
