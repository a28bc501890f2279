import sys

from agent.cli import standalone

sys.exit(standalone(sys.argv[1:]))
