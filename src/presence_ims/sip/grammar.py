"""RFC 3261 section 25 grammar fragments as regular expressions.

Names follow the ABNF rules they implement; each fragment is a plain string so
that rules compose the way the ABNF does.
"""

from __future__ import annotations

import re

# alphanum, mark, unreserved = alphanum / mark
ALPHANUM = r"A-Za-z0-9"
MARK = r"\-_.!~*'()"
UNRESERVED = ALPHANUM + MARK
# escaped = "%" HEXDIG HEXDIG
ESCAPED = r"%[0-9A-Fa-f]{2}"
# token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~" )
TOKEN_CHARS = ALPHANUM + r"\-.!%*_+`'~"
TOKEN = rf"[{TOKEN_CHARS}]+"
# word = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~" /
#        "(" / ")" / "<" / ">" / ":" / "\" / DQUOTE / "/" / "[" / "]" / "?" / "{" / "}" )
WORD = rf"[{TOKEN_CHARS}()<>:\\\"/\[\]?{{}}]+"
# user-unreserved = "&" / "=" / "+" / "$" / "," / ";" / "?" / "/"
USER = rf"(?:[{UNRESERVED}&=+$,;?/]|{ESCAPED})+"
# password = *( unreserved / escaped / "&" / "=" / "+" / "$" / "," )
PASSWORD = rf"(?:[{UNRESERVED}&=+$,]|{ESCAPED})*"
# hostname = *( domainlabel "." ) toplabel [ "." ]
DOMAINLABEL = r"[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?"
TOPLABEL = r"[A-Za-z](?:[A-Za-z0-9\-]*[A-Za-z0-9])?"
HOSTNAME = rf"(?:{DOMAINLABEL}\.)*{TOPLABEL}\.?"
IPV4 = r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}"
IPV6REF = r"\[[0-9A-Fa-f:.]+\]"
HOST = rf"(?:{IPV6REF}|{IPV4}|{HOSTNAME})"
PORT = r"\d{1,5}"
# paramchar = param-unreserved / unreserved / escaped ; param-unreserved = "[" / "]" / "/" / ":" / "&" / "+" / "$"
PARAMCHARS = rf"(?:[\[\]/:&+${UNRESERVED}]|{ESCAPED})+"
# hnv-unreserved = "[" / "]" / "/" / "?" / ":" / "+" / "$"
HCHARS = rf"(?:[\[\]/?:+${UNRESERVED}]|{ESCAPED})*"
# Method = INVITEm / ... / extension-method ; extension-method = token
METHOD = TOKEN
SIP_VERSION = r"SIP/\d+\.\d+"
# quoted-string = SWS DQUOTE *(qdtext / quoted-pair ) DQUOTE
QUOTED_STRING = r'"(?:[^"\\\r\n]|\\[\x00-\x09\x0b\x0c\x0e-\x7f])*"'
# gen-value = token / host / quoted-string
GEN_VALUE = rf"(?:{TOKEN}|{HOST}|{QUOTED_STRING})"
SWS = r"[ \t]*"

TOKEN_RE = re.compile(TOKEN)
# The characters of ``token``: ``not text.strip(TOKEN_CHARSET)`` is true when every character
# of ``text`` is one (a non-empty such text is a token), without a regex.
TOKEN_CHARSET = "".join(chr(c) for c in range(128) if TOKEN_RE.fullmatch(chr(c)))
HOST_RE = re.compile(HOST)
USER_RE = re.compile(USER)
PASSWORD_RE = re.compile(PASSWORD)
PARAM_NAME_RE = re.compile(PARAMCHARS)
PARAM_VALUE_RE = re.compile(PARAMCHARS)
HCHARS_RE = re.compile(HCHARS)
QUOTED_STRING_RE = re.compile(QUOTED_STRING)
METHOD_RE = re.compile(METHOD)
# generic-param = token [ EQUAL gen-value ]
GENERIC_PARAM_RE = re.compile(rf"{SWS}({TOKEN}){SWS}(?:={SWS}({TOKEN}|{IPV6REF}|{QUOTED_STRING}))?{SWS}")
# Request-Line  =  Method SP Request-URI SP SIP-Version CRLF (single SPs; no LWS inside the URI)
# (the "SIP" of SIP-Version is case-insensitive, RFC 3261 section 7.1)
REQUEST_LINE_RE = re.compile(rf"({METHOD}) ([^ \t\r\n]+) ([Ss][Ii][Pp]/[^ \t\r\n]*)")
# Status-Line  =  SIP-Version SP Status-Code SP Reason-Phrase CRLF
STATUS_LINE_RE = re.compile(r"([Ss][Ii][Pp]/[^ \t]*) (\d+) ?(.*)", re.S)
HEADER_NAME_RE = re.compile(TOKEN)
DISPLAY_TOKENS_RE = re.compile(rf"{TOKEN}(?:[ \t]+{TOKEN})*")
