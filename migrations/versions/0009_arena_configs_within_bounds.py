"""arena configs within the settings' bounds (issue 23, item 3)

`tickMillis`, `snapshotEveryTicks`, `maxOrganisms` and `maxPlayers` gained bounds
(arena/domain/config.py). The domain validates a config when it loads an arena, so a stored one
out of those bounds would make its arena unloadable: each is clamped into them. The read model
keeps showing the old value until the arena's next config change. Irreversible, and harmless to
leave on a downgrade.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-08 00:30:00.000000

"""

from alembic import op

# revision identifiers, used by Alembic.
revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# The bounds as arena/domain/config.py has them now; a migration keeps its own copy, since
# later code may move them again.
BOUNDS = {
    "tickMillis": (50, 3_600_000),
    "snapshotEveryTicks": (1, 10_000),
    "maxOrganisms": (1, 512 * 512),
    "maxPlayers": (1, 1_000),
}


def upgrade():
    for name, (low, high) in BOUNDS.items():
        value = f"(config->>'{name}')::numeric"
        op.execute(
            f"UPDATE arenas SET config = jsonb_set(config, '{{{name}}}',"
            f" to_jsonb(LEAST(GREATEST({value}, {low}), {high})::bigint))"
            f" WHERE {value} NOT BETWEEN {low} AND {high}"
        )


def downgrade():
    pass
