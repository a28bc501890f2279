"""Configuration files fed arbitrary and hostile YAML: Settings or ConfigError naming the file."""

from __future__ import annotations

import tempfile
from pathlib import Path

import yaml
from hypothesis import example, given
from hypothesis import strategies as st

from rtcc.config import Settings, load_settings
from rtcc.errors import ConfigError

KEYS = ["server", "security", "relay", "cameras", "data_dir", "store", "log_level", "hub",
        "require_totp", "login_burst", "trusted_proxies", "id", "name", "lat", "lon", "url",
        "profiles", "main", "windows", "start", "days", "port", "host"]
scalars = st.one_of(st.none(), st.booleans(), st.integers(-10, 100000), st.floats(),
                    st.text(max_size=20), st.sampled_from(["${HOME}", "${NOT_SET_HERE}", "24:00",
                                                           "127.0.0.1/8", "rtsp://x/"]))
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.sampled_from(KEYS), inner, max_size=4)),
    max_leaves=15,
)
ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(8))


def _load(text: bytes) -> Settings:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "rtcc.yaml"
        path.write_bytes(text)
        try:
            return load_settings(path, env={"HOME": "/home/rtcc"})
        except ConfigError as exc:
            assert str(exc).startswith(str(path))  # noqa: PT017 -- names the file
            raise


@given(st.one_of(documents.map(lambda doc: yaml.safe_dump(doc).encode()),
                 st.text(max_size=200).map(str.encode), st.binary(max_size=100)))
@example(b"\xff\xfe not utf-8")
@example(ALIAS_BOMB.encode())
@example(b"[" * 10_000 + b"]" * 10_000)
@example(b"security: {trusted_proxies: [not-a-network]}")
@example(b"cameras: [{id: a, name: A, lat: .nan, lon: 0}]")
def test_config_text_gives_settings_or_config_error(text: bytes) -> None:
    try:
        settings = _load(text)
    except ConfigError:
        return
    assert isinstance(settings, Settings)
