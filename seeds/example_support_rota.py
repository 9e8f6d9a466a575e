"""Support rota: a "Support rota" team of the support and developer staff, plus rota tags.

The example custom seed (`tasklets-db seed run example_support_rota`). Copy it to
seeds/<your_name>.py and change the data. It is idempotent: every row is found by its natural
key before it is inserted, so running it twice changes nothing the second time. The tool owns
the transaction: raise (or let an error escape) and everything this seed wrote is rolled back.
"""

from ops.seed_helpers import Tally, announce, get_or_create, require_systech_tenant

TEAM = "Support rota"
TEAM_DESCRIPTION = "Who answers client tickets this week; rotates every Monday"
# Internal users with these roles join the rota; `lead` goes to the first support person.
ROTA_ROLES = ("support", "developer")
TAGS = (
    ("on-call", "#e11d48", "Needs the person on call"),
    ("escalation", "#b45309", "Escalated beyond first-line support"),
)


def run(conn, report):
    tenant_id = require_systech_tenant(conn, needed_by="the support rota seed")
    team_id, created = get_or_create(conn, "teams", {"tenant_id": tenant_id, "name": TEAM},
                                     {"description": TEAM_DESCRIPTION})
    announce(report, "team", TEAM, created)

    staff = conn.execute(
        "SELECT id, email, role::text FROM users"
        " WHERE tenant_id = %s AND user_type = 'internal' AND is_active AND role::text = ANY(%s)"
        " ORDER BY role::text DESC, id",  # support before developer
        (tenant_id, list(ROTA_ROLES)),
    ).fetchall()
    if not staff:
        report.line("ℹ️  No support or developer users yet (run `seed sample`); team left empty.")
    members = Tally()
    for position, (user_id, email, role) in enumerate(staff):
        _, created = get_or_create(
            conn, "team_members", {"team_id": team_id, "user_id": user_id},
            {"role": "lead" if position == 0 and role == "support" else "member"},
            returning=None)
        announce(report, "rota member", email, created, members)

    tags = Tally()
    for name, color, description in TAGS:
        _, created = get_or_create(conn, "tags", {"tenant_id": tenant_id, "name": name},
                                   {"color": color, "description": description})
        announce(report, "tag", name, created, tags)
    report.line(f"📊 Rota members added: {members.created}/{members.total}, "
                f"tags created: {tags.created}/{len(TAGS)}")
