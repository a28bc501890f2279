"""Public transparency: the crime map, response metrics and open data."""
