"""The rows `seed lookups` and `seed sample` create, as plain data (ops.seed.builtin does the work).

Rows refer to each other by natural key (client name, user email, item title), never by id.
"""

from __future__ import annotations

LOOKUP_TAGS: tuple[tuple[str, str, str], ...] = (
    ("system-prompt", "#6366f1", "Base instructions that frame an assistant's behaviour"),
    ("template", "#8b5cf6", "Reusable prompt or document skeletons"),
    ("workflow", "#0ea5e9", "Multi-step procedures an agent follows"),
    ("skill", "#10b981", "Packaged capabilities an agent can load"),
    ("hook", "#f59e0b", "Scripts triggered by agent lifecycle events"),
    ("agent", "#ef4444", "Agent definitions and personas"),
    ("command", "#14b8a6", "Slash commands and shortcuts"),
    ("prompt", "#a855f7", "Single prompts for one task"),
    ("context", "#3b82f6", "Background material loaded into a session"),
    ("memory", "#84cc16", "Facts an assistant keeps between sessions"),
    ("tool", "#f97316", "Tool and function definitions"),
    ("mcp-server", "#06b6d4", "Model Context Protocol server configurations"),
    ("rule", "#dc2626", "Hard constraints an assistant must respect"),
    ("guideline", "#65a30d", "Soft conventions and style guidance"),
    ("example", "#d946ef", "Worked examples and few-shot samples"),
    ("snippet", "#64748b", "Small reusable fragments"),
    ("config", "#475569", "Settings files for tools and editors"),
    ("documentation", "#0f766e", "Reference docs and READMEs"),
)

CLIENTS = (
    ("Acme Corp", "contact@acme.com", "https://acme.com"),
    ("TechCorp Inc", "hello@techcorp.com", "https://techcorp.com"),
    ("StartupXYZ", "team@startupxyz.com", "https://startupxyz.com"),
)
PRODUCTS = (
    ("Tasklets", "Task and project tracking for product teams"),
    ("CRM Sales", "Customer relationship management for sales teams"),
    ("SDMS v2", "School data management system, second generation"),
    ("HRM v2", "Human resources management, second generation"),
)
CLIENT_PRODUCTS = (
    ("Acme Corp", "Tasklets"), ("Acme Corp", "CRM Sales"),
    ("TechCorp Inc", "Tasklets"), ("TechCorp Inc", "SDMS v2"),
    ("StartupXYZ", "HRM v2"),
)
# (email, name, role, client name or None for internal users)
USERS = (
    ("ramesh@systech.com", "Ramesh Kumar", "admin", None),
    ("john@systech.com", "John Smith", "developer", None),
    ("sarah@systech.com", "Sarah Lee", "support", None),
    ("mike@systech.com", "Mike Brown", "company_admin", None),
    ("john@acme.com", "John Doe", "user", "Acme Corp"),
    ("admin@acme.com", "Acme Admin", "company_admin", "Acme Corp"),
    ("tech@techcorp.com", "Tech Lead", "user", "TechCorp Inc"),
    ("founder@startupxyz.com", "Startup Founder", "company_admin", "StartupXYZ"),
)
TEAMS = (
    ("Development", "Builds and ships the products",
     (("ramesh@systech.com", "lead"), ("john@systech.com", "member"))),
    ("QA", "Tests releases and triages bugs",
     (("sarah@systech.com", "lead"), ("john@systech.com", "member"))),
    ("Sales", "Wins and renews client contracts", (("mike@systech.com", "lead"),)),
    ("HR", "People operations", (("mike@systech.com", "member"), ("ramesh@systech.com", "lead"))),
)
IDEAS = (
    ("Dark mode", "A dark theme across the web and mobile apps", "Tasklets",
     "john@acme.com", "proposed", 12),
    ("API rate limiting", "Per-client limits on the public API to protect shared capacity",
     "CRM Sales", "tech@techcorp.com", "under_review", 8),
    ("Mobile app", "Native iOS and Android apps for approvals on the go", "HRM v2",
     "founder@startupxyz.com", "planned", 21),
)
# (product, title, status, priority, labels, description)
EPICS = (
    ("Tasklets", "User authentication", "in_progress", "high", ["auth", "security"],
     "Sign-in, sessions and password recovery for every portal."),
    ("CRM Sales", "Sales pipeline reports", "backlog", "medium", ["reports"],
     "Monthly and quarterly views of the sales pipeline."),
)
# (epic, title, status, priority)
FEATURES = (
    ("User authentication", "Email and password login", "in_progress", "high"),
    ("User authentication", "Password reset", "todo", "medium"),
    ("Sales pipeline reports", "Monthly pipeline report", "backlog", "medium"),
)
# (feature, title, status, priority, estimate_minutes, parent task title or None)
TASKS = (
    ("Email and password login", "Store passwords as bcrypt hashes", "done", "high", 180, None),
    ("Email and password login", "Build the login form", "in_progress", "high", 300, None),
    ("Email and password login", "Validate the email field", "todo", "medium", 60,
     "Build the login form"),
    ("Password reset", "Send password reset emails", "todo", "medium", 240, None),
    ("Monthly pipeline report", "Aggregate deals by stage", "todo", "medium", 360, None),
    ("Monthly pipeline report", "Export the report as CSV", "backlog", "low", 120, None),
)
TASK_DEPENDENCIES = (
    ("Send password reset emails", "Store passwords as bcrypt hashes"),
    ("Export the report as CSV", "Aggregate deals by stage"),
)
# (product, client, title, status, priority, reporter, assignee)
TICKETS = (
    ("Tasklets", "Acme Corp", "Cannot log in after changing password", "open", "high",
     "john@acme.com", "sarah@systech.com"),
    ("CRM Sales", "Acme Corp", "CSV export is missing the totals row", "in_progress", "medium",
     "admin@acme.com", "john@systech.com"),
    ("HRM v2", "StartupXYZ", "Leave balance shows negative days", "open", "critical",
     "founder@startupxyz.com", "sarah@systech.com"),
)
# (item kind, item title, author, body)
COMMENTS = (
    ("epic", "User authentication", "ramesh@systech.com", "Target: ship before the Q3 release."),
    ("task", "Build the login form", "john@systech.com",
     "Layout done; wiring up validation next."),
    ("ticket", "Cannot log in after changing password", "sarah@systech.com",
     "Reproduced: the session cookie is not refreshed after a password change."),
    ("ticket", "Cannot log in after changing password", "john@acme.com",
     "Thanks, happy to test a fix."),
)
# (item kind, item title, tag)
ITEM_TAGS = (
    ("epic", "User authentication", "documentation"),
    ("feature", "Password reset", "workflow"),
    ("task", "Build the login form", "template"),
    ("ticket", "Cannot log in after changing password", "guideline"),
    ("idea", "Dark mode", "example"),
)
