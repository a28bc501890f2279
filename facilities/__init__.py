"""Facilities: profiles of schools, places of worship, hospitals and businesses, and their
panic alarms."""
