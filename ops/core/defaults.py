"""Defaults shared by the library functions and the CLI's options.

They live apart from the modules that use them so the CLI can show them in `--help` without
importing every command's code at start-up (each command imports its own work lazily).
"""

DEFAULT_JOBS = 2  # parallel streams for `backup` (see ops.backup.parallel)
DEFAULT_RANDOM_SEED = 42  # `seed sample --scale`: same seed, same rows
DEFAULT_BEADS_FILE = ".beads/issues.jsonl"
DEFAULT_BEADS_PRODUCT = "Tasklets"
# Backup compressions (see ops.backup.compression); the first is what `--compress` writes:
# zstd level 3 is both smaller and faster than gzip level 1 on our JSON.
COMPRESSIONS = ("zstd", "gzip")
DEFAULT_COMPRESSION = COMPRESSIONS[0]
