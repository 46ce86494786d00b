-- Payments carry the reference the payment provider gave them, once settled.
ALTER TABLE payments ADD COLUMN provider_ref text;
CREATE UNIQUE INDEX payments_provider_ref ON payments (provider_ref) WHERE provider_ref IS NOT NULL;
