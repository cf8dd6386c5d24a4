"""The demo shop: ``make demo`` or ``python -m ferrosession.demo``."""
