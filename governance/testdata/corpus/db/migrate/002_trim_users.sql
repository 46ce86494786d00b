ALTER TABLE users -- want GOV-003
  ADD COLUMN nickname text,
  DROP COLUMN legacy_avatar;
