"""The values of the schema's enums, importable without SQLAlchemy.

ops/schema/models.py builds the native enums from these; the seeds, the beads import and the API
validate against them. Kept apart so commands that only need the values start quickly.
"""

from __future__ import annotations

USER_ROLES = ("admin", "developer", "support", "company_admin", "user")
INTERNAL_ROLES = ("admin", "developer", "support", "company_admin")
CLIENT_ROLES = ("user", "company_admin")
WORK_STATUSES = ("backlog", "todo", "in_progress", "blocked", "in_review", "done", "cancelled")
PRIORITIES = ("critical", "high", "medium", "low", "none")
TICKET_STATUSES = ("open", "in_progress", "waiting", "resolved", "closed")
