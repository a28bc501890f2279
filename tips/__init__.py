"""Anonymous tips: the public tip page, its media and the analysts' tip queue."""
