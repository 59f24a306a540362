"""XMP packets (sidecar files and packets inside images) to caption and keyword texts."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from .clean import _joined

_RDF = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"
_DC = "{http://purl.org/dc/elements/1.1/}"
_LR = "{http://ns.adobe.com/lightroom/1.0/}"
_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
_CONTAINERS = (_RDF + "Alt", _RDF + "Bag", _RDF + "Seq")


def _xmp_string(packet: bytes | str) -> str:
    if isinstance(packet, str):
        return packet.strip("\x00")
    packet = bytes(packet)
    if packet.startswith((b"\xff\xfe", b"\xfe\xff")):
        text = packet.decode("utf-16")
    elif packet.startswith(b"<\x00"):
        text = packet[: len(packet) // 2 * 2].decode("utf-16-le")
    elif packet.startswith(b"\x00<"):
        text = packet[: len(packet) // 2 * 2].decode("utf-16-be")
    else:
        text = packet.decode("utf-8-sig", errors="replace")
    return text.strip("\x00")  # NUL padding after the packet (HEIF, some JPEG writers)


def _xmp_texts(packet: bytes | str) -> tuple[list[str], list[str]]:
    """(captions, keyword texts) of an XMP packet; raises ValueError/ParseError when unusable."""
    text = _xmp_string(packet)
    upper = text.upper()
    if "<!DOCTYPE" in upper or "<!ENTITY" in upper:
        raise ValueError("XMP with a DOCTYPE is refused (entity expansion)")
    start, end = text.find("<"), text.rfind(">")
    if start < 0 or end < start:
        raise ValueError("no XML in the XMP packet")
    root = ET.fromstring(text[start : end + 1])
    fields: dict[str, list[str]] = {"description": [], "title": [], "subject": [], "hierarchy": []}
    tags = {_DC + "description": "description", _DC + "title": "title",
            _DC + "subject": "subject", _LR + "hierarchicalSubject": "hierarchy"}  # fmt: skip
    for description in root.iter(_RDF + "Description"):
        for tag, field in tags.items():
            if description.get(tag):
                fields[field].append(description.get(tag, ""))
        for child in description:
            if child.tag in tags:
                fields[tags[child.tag]].extend(_xmp_values(child))
    leaves = [value.split("|")[-1] for value in fields["hierarchy"]]
    captions = fields["description"] + fields["title"]
    return captions, _joined(fields["subject"]) + _joined(leaves)


def _xmp_values(element: ET.Element) -> list[str]:
    """The rdf:li items of an Alt/Bag/Seq (x-default first), or the element's own text."""
    items = [li for c in element if c.tag in _CONTAINERS for li in c if li.tag == _RDF + "li"]
    if not items:
        return [element.text] if element.text and element.text.strip() else []
    items.sort(key=lambda li: li.get(_XML_LANG) != "x-default")  # stable: x-default first
    return ["".join(li.itertext()) for li in items]
