-- The payments service's schema: customers and the payments they make.
CREATE TABLE customers (
    id         bigint PRIMARY KEY,
    email      text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE payments (
    id           bigint PRIMARY KEY,
    customer_id  bigint NOT NULL REFERENCES customers (id),
    amount_cents bigint NOT NULL CHECK (amount_cents > 0),
    currency     text NOT NULL DEFAULT 'EUR',
    status       text NOT NULL CHECK (status IN ('pending', 'settled', 'refunded')),
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX payments_customer_id ON payments (customer_id);
