"""The composition root: builds every service with its dependencies, starts and stops them in
order, and owns the command line and the HTTP application."""
