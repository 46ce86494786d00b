-- The audit log was exported to cold storage first.
-- sluice:ignore GOV-003 archived to s3://audit-archive, approved in SEC-88
DROP TABLE audit_log;
