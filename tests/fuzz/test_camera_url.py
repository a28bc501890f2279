"""Camera URL checks fed arbitrary URLs, without DNS: a SafeUrl / RtspAddress / text, or
UnsafeUrl saying why."""

from __future__ import annotations

import asyncio

from hypothesis import example, given
from hypothesis import strategies as st

from rtcc.camera_url import (
    RtspAddress,
    SafeUrl,
    check_camera_url,
    parse_rtsp_url,
    redact_url,
    scrub,
    url_with_credentials,
)
from rtcc.errors import UnsafeUrl

hosts = st.one_of(
    st.ip_addresses().map(lambda ip: f"[{ip}]" if ip.version == 6 else str(ip)),
    st.sampled_from(["camera.example.org", "[::1", "[fe80::1%eth0]", "0x7f.1", "2130706433",
                     "a..b", "", "user:pw@192.0.2.1", "[", "]", "例え.jp"]),
    st.text(max_size=20),
)
urls = st.one_of(
    st.builds(lambda scheme, host, port, path, query: f"{scheme}://{host}{port}{path}{query}",
              st.sampled_from(["rtsp", "rtsps", "http", "https", "RTSP", "ftp", ""]),
              hosts,
              st.sampled_from(["", ":554", ":0", ":99999", ":-1", ":abc", ":"]),
              st.sampled_from(["", "/", "/live/ch0", "/a b", "/%00", "#frag"]),
              st.sampled_from(["", "?channel=1", "?password=x", "?a=%zz"])),
    st.text(max_size=80),
)


async def _no_dns(host: str, port: int) -> list[str]:
    raise OSError(f"no name resolution in this test ({host}:{port})")


def _check(url: str, purpose: str, via_agent: bool) -> SafeUrl:
    return asyncio.run(check_camera_url(
        url, purpose="onvif" if purpose == "onvif" else "stream", via_agent=via_agent,
        allow_networks=["192.0.2.0/24"], resolver=_no_dns))


@given(urls, st.sampled_from(["stream", "onvif"]), st.booleans())
@example("rtsp://[::1/live", "stream", False)
@example("rtsp://[abc]/", "stream", True)
@example("http://[fe80::1%25eth0]/", "onvif", False)
@example("rtsp://0x7f.1/", "stream", False)
def test_camera_url_check_returns_a_safe_url_or_unsafe_url(
    url: str, purpose: str, via_agent: bool
) -> None:
    try:
        safe = _check(url, purpose, via_agent)
    except UnsafeUrl as exc:
        assert str(exc)  # noqa: PT017 -- every refusal says why
        return
    assert isinstance(safe, SafeUrl)
    assert "@" not in safe.url
    assert 0 < safe.port < 65536


@given(urls)
@example("rtsp://[::1/")
@example("rtsp://host:99999/")
@example(":")
def test_rtsp_url_parse_returns_an_address_or_unsafe_url(url: str) -> None:
    try:
        address = parse_rtsp_url(url)
    except UnsafeUrl as exc:
        assert len(url) < 8 or url not in str(exc)  # noqa: PT017 -- it may hold a secret
        return
    assert isinstance(address, RtspAddress)
    assert address.scheme in ("rtsp", "rtsps")
    assert isinstance(address.endpoint, str)


@given(urls, st.text(max_size=20), st.text(max_size=20))
@example("rtsp://[::1/", "user", "pw")
@example("rtsp://192.0.2.1:99999/", "user", "pw")
def test_redaction_and_credentials_never_crash(url: str, username: str, password: str) -> None:
    assert isinstance(redact_url(url), str)
    assert isinstance(scrub(f"failed to open {url}", password), str)
    try:
        parse_rtsp_url(url)
    except UnsafeUrl:
        return
    with_credentials = url_with_credentials(url, username, password)
    assert isinstance(with_credentials, str)
