"""poolwise: size SQLAlchemy async pools for managed PostgreSQL and its proxies."""

__version__ = "0.1.0"
