-- Tandem locator schema, SQLite.
-- Primary addresses and aliases share one table so that the database itself
-- guarantees an address names at most one account.
CREATE TABLE domains (
    name    TEXT PRIMARY KEY NOT NULL,
    created INTEGER NOT NULL
);

CREATE TABLE clusters (
    id      TEXT PRIMARY KEY NOT NULL,
    state   TEXT NOT NULL,
    weight  INTEGER NOT NULL,
    created INTEGER NOT NULL
);

CREATE TABLE nodes (
    cluster_id TEXT NOT NULL REFERENCES clusters(id),
    node_id    TEXT NOT NULL,
    imap       TEXT,
    pop3       TEXT,
    lmtp       TEXT,
    http       TEXT,
    internal   TEXT,
    PRIMARY KEY (cluster_id, node_id)
);

CREATE TABLE accounts (
    address    TEXT PRIMARY KEY NOT NULL,
    domain     TEXT NOT NULL REFERENCES domains(name),
    password   TEXT,
    cluster_id TEXT NOT NULL REFERENCES clusters(id),
    state      TEXT NOT NULL,
    quota      INTEGER NOT NULL,
    created    INTEGER NOT NULL
);
CREATE INDEX accounts_domain ON accounts(domain);
CREATE INDEX accounts_cluster ON accounts(cluster_id);

CREATE TABLE addresses (
    address    TEXT PRIMARY KEY NOT NULL,
    account    TEXT NOT NULL REFERENCES accounts(address) ON DELETE CASCADE,
    is_primary INTEGER NOT NULL
);
CREATE INDEX addresses_account ON addresses(account);
