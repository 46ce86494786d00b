-- Local seed data: reset and refill. Not a migration, so GOV-003 does not read it.
TRUNCATE users, projects;
INSERT INTO users (id, email) VALUES (1, 'dev@example.com');
