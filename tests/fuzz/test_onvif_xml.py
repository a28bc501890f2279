"""ONVIF replies and WS-Discovery datagrams fed arbitrary and hostile XML: a parsed value or
UnsafeXml (DiscoveryMessageError is one); DTDs, entity bombs and external entities refused."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from ingest.onvif import wsdiscovery
from ingest.onvif.wsdiscovery import ProbeMatch
from ingest.onvif.xmlsafe import UnsafeXml, parse_untrusted

BOMB = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
        b'<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]><lolz>&lol3;</lolz>')
EXTERNAL = (b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
            b"<r>&xxe;</r>")
MATCHES = wsdiscovery.build_probe_matches("urn:uuid:1", [
    ProbeMatch("urn:uuid:cam", ("http://192.0.2.10/onvif/device_service",),
               ("NetworkVideoTransmitter",), ("onvif://www.onvif.org/name/Cam",))])
PROBE = wsdiscovery.build_probe("urn:uuid:2")

xml_text = st.recursive(
    st.text(alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="<&"),
            max_size=10),
    lambda inner: st.builds(lambda tag, body: f"<{tag}>{body}</{tag}>",
                            st.sampled_from(["a", "s:Body", "d:XAddrs", "x"]), inner),
    max_leaves=8,
)


@st.composite
def mutated(draw: st.DrawFn, base: bytes) -> bytes:
    data = bytearray(base)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["cut", "insert", "flip"]))
        if action == "cut":
            del data[at:at + draw(st.integers(1, 40))]
        elif action == "insert":
            data[at:at] = draw(st.sampled_from(
                [b"<", b">", b"&lol;", b"<!DOCTYPE x>", b"]]>", b"\xff\xfe", b"<?pi?>",
                 b"<!-- c -->", b"<a>"]))
        elif at < len(data):
            data[at] ^= draw(st.integers(1, 255))
    return bytes(data)


@given(st.one_of(st.binary(max_size=300), xml_text.map(str.encode), mutated(MATCHES),
                 mutated(PROBE)))
@example(BOMB)
@example(EXTERNAL)
@example("<?xml version='1.0' encoding='utf-16'?><!DOCTYPE r [<!ENTITY e 'x'>]><r>&e;</r>"
         .encode("utf-16"))
@example(b"")
def test_discovery_datagrams_parse_or_are_refused(data: bytes) -> None:
    for parse in (wsdiscovery.parse_probe, wsdiscovery.parse_probe_matches):
        try:
            parse(data)
        except UnsafeXml:
            continue
    try:
        root = parse_untrusted(data, max_bytes=4096)
    except UnsafeXml:
        return
    assert isinstance(root.tag, str)
    assert root.getroottree().docinfo.doctype == ""


@given(mutated(MATCHES))
def test_probe_matches_keep_only_http_addresses(data: bytes) -> None:
    try:
        _relates_to, matches = wsdiscovery.parse_probe_matches(data)
    except UnsafeXml:
        return
    for match in matches:
        assert match.endpoint
        assert match.xaddrs
        assert all(addr.startswith(("http://", "https://")) for addr in match.xaddrs)
        assert isinstance(match.name, str)


def test_dtds_entity_bombs_and_external_entities_are_refused() -> None:
    for hostile in (BOMB, EXTERNAL, "<!DOCTYPE r [<!ENTITY e 'x'>]><r>&e;</r>".encode("utf-16")):
        try:
            parse_untrusted(hostile, max_bytes=65536)
        except UnsafeXml as exc:
            assert "DTD" in str(exc) or "well-formed" in str(exc)  # noqa: PT017
        else:
            raise AssertionError(f"accepted {hostile[:40]!r}")
    assert wsdiscovery.parse_probe_matches(MATCHES)[0] == "urn:uuid:1"
