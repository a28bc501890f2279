"""``rtcc`` with the test stores in the schema registry: ``python -m tests.db.run_cli db ...``
runs the real command line in a subprocess, on stores the tests define."""

from __future__ import annotations

import sys

import server.schemas
from server.cli import main
from tests.db.schemas import TEST_SCHEMAS

if __name__ == "__main__":
    server.schemas.STORE_SCHEMAS = TEST_SCHEMAS
    sys.exit(main(sys.argv[1:]))
