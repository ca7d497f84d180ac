"""What a remote peer sends, checked before aiortc reads it: offers, answers and ICE
candidates either pass or raise ValueError with a reason in the client's terms.

aiortc's SDP parser trusts its input: it asserts on a candidate with too few fields and
calls ``int()`` on ports, payload types and clock rates, so a malformed line reached the
client as ``AssertionError`` or ``invalid literal for int()``. Each rule here mirrors one
of its reads (aiortc/sdp.py) and names the line that is wrong.
"""

from __future__ import annotations

import re

MEDIA = re.compile(r"^m=(\S+) (\S+) (\S+)(?: (.+))?$")
PROFILE = re.compile(r"^[A-Z/]+$")  # what aiortc's m-line pattern accepts
CONNECTION = re.compile(r"^IN IP[46] \S+$")
HOSTNAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.:_-]*[A-Za-z0-9])?$")  # IPv4, IPv6, mDNS
CANDIDATE_TYPES = ("host", "srflx", "prflx", "relay")
SETUP_ROLES = ("active", "passive", "actpass")
FORBIDDEN_PAYLOAD_TYPES = range(72, 77)  # RTCP packet types; aiortc refuses them
MAX_LINE = 4096
FMTP_NUMBERS = ("apt", "max-fr", "max-fs", "maxplaybackrate", "minptime", "stereo", "useinbandfec")


def _number(text: str, low: int, high: int) -> bool:
    return text.isascii() and text.isdigit() and low <= int(text) <= high


def candidate_problem(text: str) -> str | None:
    """Why ``text`` (``[candidate:]foundation component transport priority address port
    typ type [raddr a rport p] …``, RFC 8839) is not a usable candidate, or None."""
    if text.startswith("candidate:"):
        text = text[len("candidate:") :]
    bits = text.split()
    if len(bits) < 8 or bits[6] != "typ":
        return "expected 'foundation component transport priority address port typ type'"
    if not _number(bits[1], 1, 256):
        return "component must be a number from 1 to 256"
    if bits[2].lower() not in ("udp", "tcp"):
        return "transport must be udp or tcp"
    if not _number(bits[3], 0, 2**32 - 1):
        return "priority must be a number"
    if not HOSTNAME.match(bits[4]):
        return "address must be an IP address or a host name"
    if not _number(bits[5], 0, 65535):
        return "port must be a number from 0 to 65535"
    if bits[7] not in CANDIDATE_TYPES:
        return f"type must be one of {', '.join(CANDIDATE_TYPES)}"
    for i in range(8, len(bits) - 1, 2):
        if bits[i] == "rport" and not _number(bits[i + 1], 0, 65535):
            return "rport must be a number from 0 to 65535"
    return None


# Not codecs: repair and redundancy formats that ride along with whatever is offered.
NOT_CODECS = {"RTX", "RED", "ULPFEC", "FLEXFEC-03"}


def video_codec_problem(sdp: str) -> str | None:
    """Why the offer's first video section cannot carry Titanium's H.264, or None. aiortc
    would only say it "failed to set remote video description send parameters"; a browser
    without H.264 (Firefox before its OpenH264 plugin is downloaded) needs to hear why."""
    names: list[str] = []
    video = False
    for line in sdp.splitlines():
        if line.startswith("m="):
            if video:
                break
            video = line.startswith("m=video")
        elif video and line.startswith("a=rtpmap:") and " " in line:
            names.append(line.split(" ", 1)[1].split("/")[0].upper())
    if not names or "H264" in names:
        return None
    offered = ", ".join(sorted({n for n in names if n not in NOT_CODECS})) or "no codec"
    return (
        f"the offer's video has no H.264 (it offers {offered}): Titanium sends H.264 only"
        " (Firefox offers it once its OpenH264 plugin is installed)"
    )


def check_sdp(sdp: str, what: str) -> None:
    """ValueError('<what>: <reason>') unless aiortc can read ``sdp`` (``what`` is 'offer'
    or 'answer')."""
    if any(c in sdp for c in "\0\x0b\x0c") or re.search(r"[\x01-\x08\x0e-\x1f]", sdp):
        raise ValueError(f"{what}: contains control characters (NUL?); SDP is text lines")
    kind = ""
    # aiortc matches a=fmtp to the section's rtpmaps wherever they are in it.
    rtpmaps: list[set[str]] = [set()]
    for line in sdp.splitlines():
        if line.startswith("m="):
            rtpmaps.append(set())
        elif line.startswith("a=rtpmap:"):
            rtpmaps[-1].add(line[len("a=rtpmap:") :].split(" ", 1)[0])
    section = 0
    for number, line in enumerate(sdp.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        where = f"{what}: line {number}"
        if len(line) > MAX_LINE:
            raise ValueError(f"{where} is longer than {MAX_LINE} characters")
        if len(line) < 2 or line[1] != "=" or not line[0].isalpha():
            raise ValueError(f"{where} is not 'x=value': {line[:40]!r}")
        if line.startswith("v=") and line != "v=0":
            raise ValueError(f"{what}: the version line must be v=0")
        elif line.startswith("c=") and not CONNECTION.match(line[2:]):
            raise ValueError(f"{where}: c= must be 'IN IP4 address' or 'IN IP6 address'")
        elif line.startswith("m="):
            kind = _check_media(line, what)
            section += 1
        elif line.startswith("a="):
            problem = _attribute_problem(line[2:], kind, rtpmaps[section])
            if problem:
                raise ValueError(f"{where}: {problem}")


def _check_media(line: str, what: str) -> str:
    m = MEDIA.match(line)
    if not m:
        raise ValueError(f"{what}: m= must be 'm=media port transport formats'")
    kind, port, profile, formats = m.groups()
    if not _number(port, 0, 65535):
        raise ValueError(f"{what}: m={kind} port is not a number")
    if not PROFILE.match(profile):
        raise ValueError(f"{what}: m={kind} transport must be like UDP/TLS/RTP/SAVPF")
    if formats is None:
        raise ValueError(f"{what}: m={kind} lists no formats")
    if kind in ("audio", "video"):
        for pt in formats.split():
            if not _number(pt, 0, 127) or int(pt) in FORBIDDEN_PAYLOAD_TYPES:
                raise ValueError(f"{what}: m={kind} payload type {pt[:12]!r} is not 0-71 or 77-127")
    return kind


def _attribute_problem(attr: str, kind: str, mapped: set[str]) -> str | None:
    """What is wrong with one ``a=`` line of a media section of ``kind``, or None;
    ``mapped``: the section's rtpmap payload types (an fmtp must name one)."""
    name, _, value = attr.partition(":")
    bits = value.split()
    if name == "candidate":
        problem = candidate_problem(value)
        return f"candidate: {problem}" if problem else None
    if name == "rtpmap":
        codec = value.split(" ", 1)
        if len(codec) != 2 or not _number(codec[0], 0, 127):
            return "a=rtpmap payload type must be a number from 0 to 127"
        parts = codec[1].split("/")
        if len(parts) < 2 or not _number(parts[1], 1, 10**7):
            return "a=rtpmap must be 'a=rtpmap:PT name/clock rate'"
        if kind == "audio" and len(parts) > 2 and not _number(parts[2], 1, 255):
            return "a=rtpmap channel count must be a number"
    elif name == "fmtp":
        if len(value.split(" ", 1)) != 2 or not bits or bits[0] not in mapped:
            return "a=fmtp must name a payload type that has an a=rtpmap"
        for param in value.split(" ", 1)[1].split(";"):
            key, eq, number = param.partition("=")
            if eq and key.strip() in FMTP_NUMBERS and not _number(number.strip(), 0, 2**31):
                return f"a=fmtp {key.strip()} must be a number"
    elif name == "rtcp-fb" and len(bits) < 2:
        return "a=rtcp-fb must be 'a=rtcp-fb:PT type'"
    elif name == "extmap":
        if len(bits) != 2 or not _number(bits[0].split("/")[0], 1, 255):
            return "a=extmap must be 'a=extmap:ID uri' with a number from 1 to 255"
    elif name == "fingerprint" and len(bits) != 2:
        return "a=fingerprint must be 'a=fingerprint:algorithm value'"
    elif name == "setup" and value not in SETUP_ROLES:
        return f"a=setup must be one of {', '.join(SETUP_ROLES)}"
    elif name in ("rtcp", "sctp-port", "max-message-size", "sctpmap"):
        if not bits or not _number(bits[0], 0, 2**31):
            return f"a={name} must start with a number"
        if name == "rtcp" and len(bits) > 1 and not CONNECTION.match(" ".join(bits[1:])):
            return "a=rtcp address must be 'IN IP4 address' or 'IN IP6 address'"
    elif name == "ssrc":
        if len(bits) < 2 or ":" not in bits[1] or not _number(bits[0], 0, 2**32 - 1):
            return "a=ssrc must be 'a=ssrc:number attribute:value'"
    elif name == "ssrc-group" and not all(_number(b, 0, 2**32 - 1) for b in bits[1:]):
        return "a=ssrc-group must be 'a=ssrc-group:semantics ssrc…' with numbers"
    return None
