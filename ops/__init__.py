"""tasklets-ops: the database lifecycle toolkit for the Tasklets PostgreSQL database."""

__version__ = "0.1.0"
