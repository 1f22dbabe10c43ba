"""逢办必查 check gateway: which credit measures apply to an organisation for a matter."""

__version__ = "0.1.0"
