"""The sans-IO SIP core: messages, URIs, headers, parsing, transactions, digest.

Nothing in this package touches sockets, asyncio or clocks.
"""

from .errors import SipError, SipFramingError, SipParseError
from .headers import (
    MAGIC_COOKIE,
    ContactStar,
    CSeq,
    MediaType,
    NameAddr,
    TokenWithParams,
    Via,
    canonical_name,
    normalize_name,
    parse_contact,
    parse_cseq,
    parse_header_params,
    parse_media_type,
    parse_name_addr,
    parse_token_params,
    parse_tokens,
    parse_via,
    split_list,
)
from .message import Headers, Message, Request, Response, make_response, method_of, reason_phrase
from .parser import (
    DEFAULT_LIMITS,
    ParserLimits,
    StreamFramer,
    parse_datagram,
    validate_request,
    validate_response,
)
from .uri import URI, AbsoluteURI, SipURI, TelURI, parse_uri, uri_equal

__all__ = [
    "DEFAULT_LIMITS",
    "MAGIC_COOKIE",
    "URI",
    "AbsoluteURI",
    "CSeq",
    "ContactStar",
    "Headers",
    "MediaType",
    "Message",
    "NameAddr",
    "ParserLimits",
    "Request",
    "Response",
    "SipError",
    "SipFramingError",
    "SipParseError",
    "SipURI",
    "StreamFramer",
    "TelURI",
    "TokenWithParams",
    "Via",
    "canonical_name",
    "make_response",
    "method_of",
    "normalize_name",
    "parse_contact",
    "parse_cseq",
    "parse_datagram",
    "parse_header_params",
    "parse_media_type",
    "parse_name_addr",
    "parse_token_params",
    "parse_tokens",
    "parse_uri",
    "parse_via",
    "reason_phrase",
    "split_list",
    "uri_equal",
    "validate_request",
    "validate_response",
]
