"""The CAD simulator: a STA-024 notifier and an EIDO poster for the demo and the tests."""
