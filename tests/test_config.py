"""Configuration files: clear errors naming file, key and what is allowed; secrets from env."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from rtcc.config import SharingLevel, load_settings
from rtcc.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent

CAMERA = """
cameras:
  - id: cam-1
    name: Front door
    lat: 39.8
    lon: -89.6
    sharing: {sharing}
    profiles:
      main: {{url: "rtsp://192.0.2.10/main", username: admin, password: "{password}"}}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "site.yaml"
    path.write_text(text)
    return path


def test_demo_config_describes_a_small_city() -> None:
    settings = load_settings(ROOT / "configs" / "demo.yaml")
    streamable = [c for c in settings.cameras if c.profiles]
    assert len(streamable) >= 6
    assert all(set(c.profiles) == {"main", "sub"} for c in streamable)
    assert {c.sharing for c in settings.cameras} == set(SharingLevel)
    assert settings.camsim is not None
    paths = {cam.path for cam in settings.camsim.cameras}
    for camera in streamable:
        for profile in camera.profiles.values():
            assert profile.url.rsplit("/", 1)[1] in paths


def test_unknown_key_names_file_and_key(tmp_path: Path) -> None:
    path = write(tmp_path, "server:\n  prot: 8080\n")
    with pytest.raises(ConfigError) as error:
        load_settings(path)
    assert str(error.value) == f"{path}: server.prot: unknown key (check its spelling and the documented keys)"


def test_wrong_value_says_what_is_allowed(tmp_path: Path) -> None:
    path = write(tmp_path, CAMERA.format(sharing="public", password="x"))
    with pytest.raises(ConfigError) as error:
        load_settings(path)
    message = str(error.value)
    assert message.startswith(f"{path}: cameras[0].sharing: ")
    for allowed in ("'registry_only'", "'on_request'", "'live_emergency'", "'live_always'"):
        assert allowed in message
    assert "got 'public'" in message


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("lat", "91", "cameras[0].lat: Input should be less than or equal to 90"),
        ("lon", ".nan", "cameras[0].lon: "),
        ("heading", "400", "cameras[0].heading: Input should be less than or equal to 360"),
    ],
)
def test_bad_coordinates_are_refused(tmp_path: Path, field: str, value: str, expected: str) -> None:
    text = CAMERA.format(sharing="live_always", password="x").replace(
        "    lat: 39.8\n    lon: -89.6\n",
        "    lat: 39.8\n    lon: -89.6\n".replace(f"{field}: ", f"{field}: {value} #")
        if field in ("lat", "lon")
        else f"    lat: 39.8\n    lon: -89.6\n    {field}: {value}\n",
    )
    with pytest.raises(ConfigError, match=expected.replace("[", r"\[").replace("]", r"\]")):
        load_settings(write(tmp_path, text))


def test_secrets_come_from_the_environment(tmp_path: Path) -> None:
    path = write(tmp_path, CAMERA.format(sharing="live_always", password="${FRONT_DOOR_PW}"))
    settings = load_settings(path, env={"FRONT_DOOR_PW": "s3cret-canary"})
    password = settings.cameras[0].profiles["main"].password
    assert password.get_secret_value() == "s3cret-canary"
    assert "s3cret-canary" not in repr(settings)
    with pytest.raises(ConfigError, match=r"cameras\[0\]\.profiles\.main\.password: environment variable FRONT_DOOR_PW is not set"):
        load_settings(path, env={})


def test_credentials_inside_a_url_are_refused(tmp_path: Path) -> None:
    text = CAMERA.format(sharing="live_always", password="x").replace(
        "rtsp://192.0.2.10/main", "rtsp://admin:hunter2@192.0.2.10/main"
    )
    with pytest.raises(ConfigError) as error:
        load_settings(write(tmp_path, text))
    assert "not in the URL" in str(error.value)
    assert "hunter2" not in str(error.value)


def test_unsafe_yaml_tags_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "server: !!python/object/apply:os.system ['id']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(path)


def test_check_config_command_reports_the_error(tmp_path: Path) -> None:
    path = write(tmp_path, "store: mysql://x\n")
    result = subprocess.run(
        [sys.executable, "-m", "server", "check-config", str(path)],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )
    assert result.returncode == 2
    assert (f"{path}: store: Value error, store must start with sqlite:///, redis:// or "
            "postgresql://") in result.stderr


def test_a_password_with_a_slash_cannot_hide_in_the_url(tmp_path: Path) -> None:
    text = CAMERA.format(sharing="live_always", password="x").replace(
        "rtsp://192.0.2.10/main", "rtsp://viewer:pa/ss@192.0.2.10/main"
    )
    with pytest.raises(ConfigError) as error:
        load_settings(write(tmp_path, text))
    assert "not in the URL" in str(error.value)
