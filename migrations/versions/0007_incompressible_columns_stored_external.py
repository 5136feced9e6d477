"""boards and outbox envelopes are stored out of line without compression (STORAGE EXTERNAL)

A stored board is an LZ4 frame and a tick's envelope is mostly base64 of zlib-compressed deltas:
PostgreSQL's TOAST compression (pglz) gains nothing on them and cost, per 64 x 64 board, four
times what the write itself does (1.2 ms against 0.3 ms here); for envelopes, twice. Small values
(every command's envelope) are never TOASTed and are not affected.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 09:40:00.000000

"""

from alembic import op

# revision identifiers, used by Alembic.
revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade():
    op.execute("ALTER TABLE arena_boards ALTER COLUMN board SET STORAGE EXTERNAL")
    op.execute("ALTER TABLE outbox ALTER COLUMN envelope SET STORAGE EXTERNAL")


def downgrade():
    op.execute("ALTER TABLE outbox ALTER COLUMN envelope SET STORAGE EXTENDED")
    op.execute("ALTER TABLE arena_boards ALTER COLUMN board SET STORAGE EXTENDED")
