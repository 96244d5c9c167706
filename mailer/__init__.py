"""mailer: the bulletin and e-newsletter engine of the LEP Network."""

__version__ = "0.1.0"
