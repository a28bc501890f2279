"""Incidents: CAD feeds (NENA EIDO, STA-024), the incident model and its emergency access."""
