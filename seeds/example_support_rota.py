"""Support rota: a "Support rota" team (Sarah leads, John backs up) and two rota tags.

The example custom seed (`tasklets-db seed run example_support_rota`). Copy it to
seeds/<your_name>.py and change the data. It is idempotent: every row is found by its natural
key before it is inserted, so running it twice changes nothing the second time. The tool owns
the transaction: raise (or let an error escape) and everything this seed wrote is rolled back.
"""

from ops.seed.helpers import Tally, announce, get_or_create, require_systech_tenant

TEAM = "Support rota"
TEAM_DESCRIPTION = "Who answers client tickets this week; rotates every Monday"
# (email, role in the team): the people on the rota, found by their natural key.
ROTA = (("sarah@systech.com", "lead"), ("john@systech.com", "member"))
TAGS = (
    ("on-call", "#e11d48", "Needs the person on call"),
    ("escalation", "#b45309", "Escalated beyond first-line support"),
)


def run(conn, report):
    tenant_id = require_systech_tenant(conn, needed_by="the support rota seed")
    team_id, created = get_or_create(conn, "teams", {"tenant_id": tenant_id, "name": TEAM},
                                     {"description": TEAM_DESCRIPTION})
    announce(report, "team", TEAM, created)

    members = Tally()
    for email, role in ROTA:
        user = conn.execute("SELECT id FROM users WHERE tenant_id = %s AND email = %s",
                            (tenant_id, email)).fetchone()
        if user is None:  # a seed should explain a gap rather than fail on it
            report.line(f"ℹ️  {email} does not exist (run `seed sample`); left off the rota")
            continue
        _, created = get_or_create(conn, "team_members", {"team_id": team_id, "user_id": user[0]},
                                   {"role": role}, returning=None)
        announce(report, "rota member", f"{email} ({role})", created, members)

    tags = Tally()
    for name, color, description in TAGS:
        _, created = get_or_create(conn, "tags", {"tenant_id": tenant_id, "name": name},
                                   {"color": color, "description": description})
        announce(report, "tag", name, created, tags)
    report.line(f"📊 Rota members added: {members.created}/{len(ROTA)}, "
                f"tags created: {tags.created}/{len(TAGS)}")
