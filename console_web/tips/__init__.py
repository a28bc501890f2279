"""The tip line's pages: the public tip page (``/tips/``) and the analysts' tip queue
(``/console/tips/``)."""
