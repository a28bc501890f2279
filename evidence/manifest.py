"""The export manifest and its signature.

``manifest.json`` is canonical JSON (sorted keys, no spaces, UTF-8). ``manifest.sig`` is a small
JSON document with Ed25519 signatures by the server's evidence key:

- ``manifest``: over the exact bytes of ``manifest.json``; this is what makes the package
  trustworthy.
- ``parts``: one signature per part of the manifest (``header``, ``sources[N]``, ``files[N]``),
  each over ``canonical({"part": NAME, "value": VALUE})``. They add no trust of their own; they
  let ``rtcc verify`` say *which* entry was altered when the whole-manifest signature fails.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from evidence.signing import ALGORITHM, SigningKey

FORMAT = "rtcc-evidence-export/1"
FILE_FORMAT = "rtcc-evidence-file/1"
"""A package of one evidence item taken in from a file (``evidence.items``)."""
FILE_MEMBER = re.compile(r"^original\.[a-z0-9]{1,5}$")
"""The one file of a ``FILE_FORMAT`` package."""
MANIFEST_NAME = "manifest.json"
SIGNATURE_NAME = "manifest.sig"
PUBLIC_KEY_NAME = "public-key.pem"
CLIP_NAME = "clip.mp4"
WATERMARKED_NAME = "watermarked.mp4"
PACKAGE_MEMBERS = frozenset({MANIFEST_NAME, SIGNATURE_NAME, PUBLIC_KEY_NAME, CLIP_NAME,
                             WATERMARKED_NAME})


def canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def parts_of(manifest: dict[str, Any]) -> dict[str, Any]:
    """The separately signed parts: the header (everything but the lists) and each entry."""
    header = {key: value for key, value in manifest.items() if key not in ("sources", "files")}
    parts: dict[str, Any] = {"header": header}
    for i, source in enumerate(manifest.get("sources", [])):
        parts[f"sources[{i}]"] = source
    for i, entry in enumerate(manifest.get("files", [])):
        parts[f"files[{i}]"] = entry
    return parts


def part_message(name: str, value: Any) -> bytes:
    return canonical({"part": name, "value": value})


def sign_manifest(manifest: dict[str, Any], key: SigningKey) -> tuple[bytes, bytes]:
    """(manifest.json bytes, manifest.sig bytes)."""
    body = canonical(manifest)
    signature = {
        "algorithm": ALGORITHM,
        "key_fingerprint": key.fingerprint,
        "manifest": key.sign(body),
        "parts": {name: key.sign(part_message(name, value))
                  for name, value in parts_of(manifest).items()},
    }
    return body, canonical(signature)


def describe_part(name: str, value: Any) -> str:
    """A person's name for a manifest part, e.g. ``source segment 3 (id 17, 2024-...Z)``."""
    if name.startswith("sources[") and isinstance(value, dict):
        index = int(name[len("sources["):-1]) + 1
        return (f"source segment {index} (id {value.get('segment_id')}, "
                f"{value.get('utc_start', '?')} to {value.get('utc_end', '?')})")
    if name.startswith("files[") and isinstance(value, dict):
        return f"the entry of {value.get('name', '?')}"
    if name == "header":
        return "the header (case, camera, owner, requester, grant, time range, tools)"
    return name


Progress = Callable[[str, float], None]
"""(stage, fraction done 0..1) reported while exporting or verifying."""
