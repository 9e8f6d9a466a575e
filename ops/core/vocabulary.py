"""Names and values every part shares, importable without SQLAlchemy.

The schema's enums (ops/schema/models.py builds the native enums from these; the seeds, the
beads import and the API validate against them), and the sample data's fixed names. Kept
apart so commands that only need the values start quickly.
"""

from __future__ import annotations

USER_ROLES = ("admin", "developer", "support", "company_admin", "user")
INTERNAL_ROLES = ("admin", "developer", "support", "company_admin")
WORK_STATUSES = ("backlog", "todo", "in_progress", "blocked", "in_review", "done", "cancelled")
PRIORITIES = ("critical", "high", "medium", "low", "none")
TICKET_STATUSES = ("open", "in_progress", "waiting", "resolved", "closed")

# The sample users' password (published: development only).
SAMPLE_PASSWORD = "Systech@123"
# Node's bcrypt/bcryptjs default; ~50 ms per hash, so a handful of users costs well under a second.
BCRYPT_ROUNDS = 10
