"""Create the orchestrator, audit, domain and warehouse tables.

Revision ID: 0001
Revises:
Create Date: 2026-11-23 09:06:35.782744
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "api_clients",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("key_prefix", sa.String(length=16), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_clients")),
        sa.UniqueConstraint("name", name=op.f("uq_api_clients_name")),
    )
    with op.batch_alter_table("api_clients", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_clients_key_prefix"), ["key_prefix"], unique=False)

    op.create_table(
        "audit_chains",
        sa.Column("chain_key", sa.String(length=36), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("head_hash", sa.String(length=64), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("chain_key", name=op.f("pk_audit_chains")),
    )
    op.create_table(
        "audit_checkpoints",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("chain_count", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("signature", sa.String(length=64), nullable=True),
        sa.Column(
            "heads",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_checkpoints")),
    )
    op.create_table(
        "requests",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=24), nullable=False),
        sa.Column("step_index", sa.Integer(), nullable=False),
        sa.Column("current_step", sa.String(length=64), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("max_attempt", sa.Integer(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("submitted_by", sa.String(length=128), nullable=False),
        sa.Column("idempotency_key", sa.String(length=255), nullable=True),
        sa.Column("payload_digest", sa.String(length=64), nullable=False),
        sa.Column(
            "payload",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "result",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column(
            "error",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("lease_owner", sa.String(length=128), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("not_before", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("audit_seq", sa.Integer(), nullable=False),
        sa.Column("audit_head", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_requests")),
        sa.UniqueConstraint(
            "submitted_by", "idempotency_key", name=op.f("uq_requests_submitted_by_idempotency_key")
        ),
    )
    with op.batch_alter_table("requests", schema=None) as batch_op:
        batch_op.create_index("ix_requests_created_at_id", ["created_at", "id"], unique=False)
        batch_op.create_index("ix_requests_kind_created_at", ["kind", "created_at"], unique=False)
        batch_op.create_index("ix_requests_state_created_at", ["state", "created_at"], unique=False)
        batch_op.create_index(
            "ix_requests_submitted_by_created_at", ["submitted_by", "created_at"], unique=False
        )
        # Expression index (priority DESC): autogenerate cannot compare it on SQLite, so env.py
        # leaves it out of `alembic check` and this migration owns it.
        batch_op.create_index(
            "ix_requests_claim",
            [sa.text("priority DESC"), "created_at"],
            unique=False,
            postgresql_where=sa.text("state IN ('pending', 'running')"),
            sqlite_where=sa.text("state IN ('pending', 'running')"),
        )

    op.create_table(
        "agent_executions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("request_id", sa.Uuid(), nullable=False),
        sa.Column("step", sa.String(length=64), nullable=False),
        sa.Column("step_index", sa.Integer(), nullable=False),
        sa.Column("agent_id", sa.String(length=64), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("input_digest", sa.String(length=64), nullable=True),
        sa.Column("output_digest", sa.String(length=64), nullable=True),
        sa.Column(
            "output",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("worker_id", sa.String(length=128), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["requests.id"],
            name=op.f("fk_agent_executions_request_id_requests"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_executions")),
    )
    with op.batch_alter_table("agent_executions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_agent_executions_agent_id_started_at", ["agent_id", "started_at"], unique=False
        )
        batch_op.create_index(
            "ix_agent_executions_request_id_step_index",
            ["request_id", "step_index", "attempt"],
            unique=False,
        )

    op.create_table(
        "approvals",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("request_id", sa.Uuid(), nullable=False),
        sa.Column("step", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column(
            "summary",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_by", sa.String(length=128), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["requests.id"],
            name=op.f("fk_approvals_request_id_requests"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_approvals")),
    )
    with op.batch_alter_table("approvals", schema=None) as batch_op:
        batch_op.create_index("ix_approvals_request_id", ["request_id"], unique=False)
        batch_op.create_index(
            "ix_approvals_status_requested_at", ["status", "requested_at"], unique=False
        )

    op.create_table(
        "audit_logs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("chain_key", sa.String(length=36), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Uuid(), nullable=True),
        sa.Column("event_type", sa.String(length=48), nullable=False),
        sa.Column("severity", sa.String(length=10), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("agent_id", sa.String(length=64), nullable=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "event_data",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["requests.id"],
            name=op.f("fk_audit_logs_request_id_requests"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_logs")),
        sa.UniqueConstraint("chain_key", "seq", name=op.f("uq_audit_logs_chain_key_seq")),
    )
    with op.batch_alter_table("audit_logs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_audit_logs_actor_occurred_at", ["actor", "occurred_at"], unique=False
        )
        batch_op.create_index(
            "ix_audit_logs_agent_id_occurred_at", ["agent_id", "occurred_at"], unique=False
        )
        batch_op.create_index(
            "ix_audit_logs_event_type_occurred_at", ["event_type", "occurred_at"], unique=False
        )
        batch_op.create_index("ix_audit_logs_occurred_at_id", ["occurred_at", "id"], unique=False)
        batch_op.create_index("ix_audit_logs_request_id", ["request_id"], unique=False)
        batch_op.create_index(
            "ix_audit_logs_severity_occurred_at", ["severity", "occurred_at"], unique=False
        )

    op.create_table(
        "data_deliveries",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("request_id", sa.Uuid(), nullable=False),
        sa.Column("folder", sa.Text(), nullable=False),
        sa.Column(
            "files",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("manifest_sha256", sa.String(length=64), nullable=False),
        sa.Column("row_count", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["requests.id"],
            name=op.f("fk_data_deliveries_request_id_requests"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_data_deliveries")),
    )
    with op.batch_alter_table("data_deliveries", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_data_deliveries_request_id"), ["request_id"], unique=False
        )

    op.create_table(
        "escalations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("request_id", sa.Uuid(), nullable=False),
        sa.Column("step", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=48), nullable=False),
        sa.Column(
            "detail",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_by", sa.String(length=128), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolution", sa.String(length=16), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["requests.id"],
            name=op.f("fk_escalations_request_id_requests"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_escalations")),
    )
    with op.batch_alter_table("escalations", schema=None) as batch_op:
        batch_op.create_index("ix_escalations_request_id", ["request_id"], unique=False)
        batch_op.create_index(
            "ix_escalations_status_opened_at", ["status", "opened_at"], unique=False
        )

    op.create_table(
        "feasibility_reports",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("request_id", sa.Uuid(), nullable=False),
        sa.Column("sql_text", sa.Text(), nullable=False),
        sa.Column("cohort_size", sa.Integer(), nullable=False),
        sa.Column("min_cohort_size", sa.Integer(), nullable=False),
        sa.Column("feasible", sa.Boolean(), nullable=False),
        sa.Column(
            "element_availability",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["requests.id"],
            name=op.f("fk_feasibility_reports_request_id_requests"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feasibility_reports")),
    )
    with op.batch_alter_table("feasibility_reports", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_feasibility_reports_request_id"), ["request_id"], unique=False
        )

    op.create_table(
        "recordings",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("request_id", sa.Uuid(), nullable=False),
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("clinician_id", sa.String(length=64), nullable=False),
        sa.Column("audio_file_path", sa.Text(), nullable=False),
        sa.Column("audio_file_size", sa.Integer(), nullable=False),
        sa.Column("audio_sha256", sa.String(length=64), nullable=True),
        sa.Column("duration_seconds", sa.Float(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("retry_count", sa.Integer(), nullable=False),
        sa.Column("transcript", sa.Text(), nullable=True),
        sa.Column(
            "verification_results",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("uploaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["requests.id"],
            name=op.f("fk_recordings_request_id_requests"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recordings")),
        sa.UniqueConstraint("request_id", name=op.f("uq_recordings_request_id")),
    )
    with op.batch_alter_table("recordings", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_recordings_clinician_id"), ["clinician_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_recordings_patient_id"), ["patient_id"], unique=False)

    op.create_table(
        "requirements_data",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("request_id", sa.Uuid(), nullable=False),
        sa.Column(
            "criteria",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("completeness_score", sa.Float(), nullable=False),
        sa.Column(
            "issues",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["requests.id"],
            name=op.f("fk_requirements_data_request_id_requests"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_requirements_data")),
    )
    with op.batch_alter_table("requirements_data", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_requirements_data_request_id"), ["request_id"], unique=False
        )

    op.create_table(
        "research_requests",
        sa.Column("request_id", sa.Uuid(), nullable=False),
        sa.Column("researcher", sa.String(length=128), nullable=False),
        sa.Column("irb_number", sa.String(length=64), nullable=True),
        sa.Column("study_title", sa.String(length=512), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["requests.id"],
            name=op.f("fk_research_requests_request_id_requests"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("request_id", name=op.f("pk_research_requests")),
    )
    with op.batch_alter_table("research_requests", schema=None) as batch_op:
        batch_op.create_index("ix_research_requests_irb_number", ["irb_number"], unique=False)

    op.create_table(
        "state_transitions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("request_id", sa.Uuid(), nullable=False),
        sa.Column("from_state", sa.String(length=24), nullable=True),
        sa.Column("to_state", sa.String(length=24), nullable=False),
        sa.Column("step", sa.String(length=64), nullable=True),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["requests.id"],
            name=op.f("fk_state_transitions_request_id_requests"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_state_transitions")),
    )
    with op.batch_alter_table("state_transitions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_state_transitions_request_id_created_at", ["request_id", "created_at"], unique=False
        )

    op.create_table(
        "patients",
        sa.Column("patient_id", sa.String(length=16), nullable=False),
        sa.Column("mrn", sa.String(length=16), nullable=False),
        sa.Column("first_name", sa.String(length=64), nullable=False),
        sa.Column("last_name", sa.String(length=64), nullable=False),
        sa.Column("birth_date", sa.Date(), nullable=False),
        sa.Column("sex", sa.String(length=1), nullable=False),
        sa.Column("address", sa.String(length=128), nullable=False),
        sa.Column("city", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=2), nullable=False),
        sa.Column("zip_code", sa.String(length=10), nullable=False),
        sa.Column("phone", sa.String(length=20), nullable=False),
        sa.Column("email", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("patient_id", name=op.f("pk_patients")),
        sa.UniqueConstraint("mrn", name=op.f("uq_patients_mrn")),
    )
    op.create_table(
        "conditions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("patient_id", sa.String(length=16), nullable=False),
        sa.Column("icd10_code", sa.String(length=8), nullable=False),
        sa.Column("description", sa.String(length=128), nullable=False),
        sa.Column("onset_date", sa.Date(), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.patient_id"], name=op.f("fk_conditions_patient_id_patients")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conditions")),
    )
    with op.batch_alter_table("conditions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_conditions_icd10_code_onset_date", ["icd10_code", "onset_date"], unique=False
        )
        batch_op.create_index("ix_conditions_patient_id", ["patient_id"], unique=False)

    op.create_table(
        "encounters",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("patient_id", sa.String(length=16), nullable=False),
        sa.Column("encounter_date", sa.Date(), nullable=False),
        sa.Column("encounter_type", sa.String(length=32), nullable=False),
        sa.Column("facility", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.patient_id"], name=op.f("fk_encounters_patient_id_patients")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_encounters")),
    )
    with op.batch_alter_table("encounters", schema=None) as batch_op:
        batch_op.create_index(
            "ix_encounters_patient_id_encounter_date",
            ["patient_id", "encounter_date"],
            unique=False,
        )

    op.create_table(
        "observations",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("patient_id", sa.String(length=16), nullable=False),
        sa.Column("loinc_code", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("unit", sa.String(length=16), nullable=False),
        sa.Column("observed_on", sa.Date(), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["patients.patient_id"],
            name=op.f("fk_observations_patient_id_patients"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_observations")),
    )
    with op.batch_alter_table("observations", schema=None) as batch_op:
        batch_op.create_index(
            "ix_observations_patient_id_loinc_code", ["patient_id", "loinc_code"], unique=False
        )


def downgrade() -> None:

    with op.batch_alter_table("observations", schema=None) as batch_op:
        batch_op.drop_index("ix_observations_patient_id_loinc_code")

    op.drop_table("observations")
    with op.batch_alter_table("encounters", schema=None) as batch_op:
        batch_op.drop_index("ix_encounters_patient_id_encounter_date")

    op.drop_table("encounters")
    with op.batch_alter_table("conditions", schema=None) as batch_op:
        batch_op.drop_index("ix_conditions_patient_id")
        batch_op.drop_index("ix_conditions_icd10_code_onset_date")

    op.drop_table("conditions")
    op.drop_table("patients")
    with op.batch_alter_table("state_transitions", schema=None) as batch_op:
        batch_op.drop_index("ix_state_transitions_request_id_created_at")

    op.drop_table("state_transitions")
    with op.batch_alter_table("research_requests", schema=None) as batch_op:
        batch_op.drop_index("ix_research_requests_irb_number")

    op.drop_table("research_requests")
    with op.batch_alter_table("requirements_data", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_requirements_data_request_id"))

    op.drop_table("requirements_data")
    with op.batch_alter_table("recordings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_recordings_patient_id"))
        batch_op.drop_index(batch_op.f("ix_recordings_clinician_id"))

    op.drop_table("recordings")
    with op.batch_alter_table("feasibility_reports", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_feasibility_reports_request_id"))

    op.drop_table("feasibility_reports")
    with op.batch_alter_table("escalations", schema=None) as batch_op:
        batch_op.drop_index("ix_escalations_status_opened_at")
        batch_op.drop_index("ix_escalations_request_id")

    op.drop_table("escalations")
    with op.batch_alter_table("data_deliveries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_data_deliveries_request_id"))

    op.drop_table("data_deliveries")
    with op.batch_alter_table("audit_logs", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_logs_severity_occurred_at")
        batch_op.drop_index("ix_audit_logs_request_id")
        batch_op.drop_index("ix_audit_logs_occurred_at_id")
        batch_op.drop_index("ix_audit_logs_event_type_occurred_at")
        batch_op.drop_index("ix_audit_logs_agent_id_occurred_at")
        batch_op.drop_index("ix_audit_logs_actor_occurred_at")

    op.drop_table("audit_logs")
    with op.batch_alter_table("approvals", schema=None) as batch_op:
        batch_op.drop_index("ix_approvals_status_requested_at")
        batch_op.drop_index("ix_approvals_request_id")

    op.drop_table("approvals")
    with op.batch_alter_table("agent_executions", schema=None) as batch_op:
        batch_op.drop_index("ix_agent_executions_request_id_step_index")
        batch_op.drop_index("ix_agent_executions_agent_id_started_at")

    op.drop_table("agent_executions")
    with op.batch_alter_table("requests", schema=None) as batch_op:
        batch_op.drop_index("ix_requests_claim")
        batch_op.drop_index("ix_requests_submitted_by_created_at")
        batch_op.drop_index("ix_requests_state_created_at")
        batch_op.drop_index("ix_requests_kind_created_at")
        batch_op.drop_index("ix_requests_created_at_id")

    op.drop_table("requests")
    op.drop_table("audit_checkpoints")
    op.drop_table("audit_chains")
    with op.batch_alter_table("api_clients", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_clients_key_prefix"))

    op.drop_table("api_clients")
