"""What people see in a browser: the analyst wall console at ``/console/``.

Wiring (``server/app.py``): ``console_web.routes.add_routes(app)`` adds the page, its files
(``/console/static/...``: the console's ES modules and the vendored Leaflet) and the console's
API (``/api/console/config``, ``/api/console/access``). The page holds no data and runs under
the server's CSP (``script-src 'self'``); everything it shows comes from the API.
"""
