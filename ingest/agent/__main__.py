import sys

from ingest.agent.cli import standalone

sys.exit(standalone(sys.argv[1:]))
