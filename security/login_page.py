"""The login page: plain HTML, no script (the CSP forbids inline script), every value escaped.

The form posts back to ``/login`` (keeping ``?next=``), so a refused login shows this page again
at the same address. The one-time-code field appears only when the server requires codes of
staff, or when a login was refused because the account's code was missing.
"""

from __future__ import annotations

from html import escape
from urllib.parse import urlencode

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Log in - RTCC</title>
<style>
body {{ font-family: system-ui, sans-serif; background: #10151c; color: #e8edf2; margin: 0; }}
main {{ max-width: 22rem; margin: 12vh auto; padding: 2rem; background: #1b2430;
        border-radius: 8px; }}
h1 {{ font-size: 1.2rem; margin-top: 0; }}
label {{ display: block; margin: 0.8rem 0 0.2rem; }}
input {{ width: 100%; box-sizing: border-box; padding: 0.5rem; font-size: 1rem; }}
button {{ margin-top: 1.2rem; width: 100%; padding: 0.6rem; font-size: 1rem; }}
.error {{ color: #ff8a80; min-height: 1.2em; }}
</style>
</head>
<body>
<main>
<h1>Real-time crime center</h1>
<form method="post" action="{action}">
<input type="hidden" name="next" value="{next}">
<label for="username">User name</label>
<input id="username" name="username" autocomplete="username" value="{username}" required>
<label for="password">Password</label>
<input id="password" type="password" name="password" autocomplete="current-password" required>
{code_field}<p class="error" role="alert">{error}</p>
<button type="submit">Log in</button>
</form>
</main>
</body>
</html>
"""


def safe_next(target: str | None) -> str:
    """A same-site path to go to after logging in; anything else becomes ``/``."""
    if (not target or len(target) > 1000 or not target.startswith("/")
            or target.startswith(("//", "/\\"))
            or any(ord(ch) < 0x20 or ch == "\\" for ch in target)):
        return "/"
    return target


_CODE_FIELD = """<label for="totp">One-time code</label>
<input id="totp" name="totp" inputmode="numeric" autocomplete="one-time-code" maxlength="6"{focus}>
"""


def login_action(next_path: str) -> str:
    """Where the form posts: ``/login``, carrying a ``next`` other than ``/`` in the query."""
    target = safe_next(next_path)
    return "/login" if target == "/" else "/login?" + urlencode({"next": target})


def render_login(*, username: str = "", error: str = "", next_path: str = "/",
                 ask_code: bool = False, focus_code: bool = False) -> str:
    code_field = _CODE_FIELD.format(focus=" autofocus required" if focus_code else "")
    return _PAGE.format(
        action=escape(login_action(next_path), quote=True),
        code_field=code_field if ask_code or focus_code else "",
        next=escape(safe_next(next_path), quote=True),
        username=escape(username[:64], quote=True),
        error=escape(error, quote=True),
    )
