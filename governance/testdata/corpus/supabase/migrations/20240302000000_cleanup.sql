DROP TABLE temp_import; -- users are untouched
-- DROP TABLE payments;
INSERT INTO audit_log (action) VALUES ('TRUNCATE payments');
