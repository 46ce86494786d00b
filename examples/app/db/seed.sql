-- The data `sluice demo` loads into its throwaway production database: deterministic, so
-- the committed baseline.json (captured from it) holds its counts.
INSERT INTO customers (id, email, created_at)
SELECT i, 'customer' || i || '@example.com', timestamptz '2026-01-01 00:00:00+00' + i * interval '1 hour'
FROM generate_series(1, 200) AS i;

INSERT INTO payments (id, customer_id, amount_cents, currency, status, provider_ref, created_at)
SELECT i, 1 + (i * 7) % 200, 100 + (i * 37) % 9900, CASE WHEN i % 5 = 0 THEN 'USD' ELSE 'EUR' END,
       (ARRAY['pending', 'settled', 'refunded'])[1 + i % 3],
       CASE WHEN i % 3 = 1 THEN 'pp_' || i END,
       timestamptz '2026-01-02 00:00:00+00' + i * interval '5 minutes'
FROM generate_series(1, 1000) AS i;
