"""`make bench`: tasklets-db against pg_dump/pg_restore, measured in one run on one machine."""
