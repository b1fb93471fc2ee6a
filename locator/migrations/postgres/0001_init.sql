-- Tandem locator schema, PostgreSQL.
-- Primary addresses and aliases share one table so that the database itself
-- guarantees an address names at most one account.
CREATE TABLE domains (
    name    VARCHAR(253) PRIMARY KEY,
    created BIGINT NOT NULL
);

CREATE TABLE clusters (
    id      VARCHAR(64) PRIMARY KEY,
    state   VARCHAR(16) NOT NULL,
    weight  BIGINT NOT NULL,
    created BIGINT NOT NULL
);

CREATE TABLE nodes (
    cluster_id VARCHAR(64) NOT NULL REFERENCES clusters(id),
    node_id    VARCHAR(64) NOT NULL,
    imap       VARCHAR(300),
    pop3       VARCHAR(300),
    lmtp       VARCHAR(300),
    http       VARCHAR(300),
    internal   VARCHAR(300),
    PRIMARY KEY (cluster_id, node_id)
);

CREATE TABLE accounts (
    address    VARCHAR(254) PRIMARY KEY,
    domain     VARCHAR(253) NOT NULL REFERENCES domains(name),
    password   TEXT,
    cluster_id VARCHAR(64) NOT NULL REFERENCES clusters(id),
    state      VARCHAR(16) NOT NULL,
    quota      BIGINT NOT NULL,
    created    BIGINT NOT NULL
);
CREATE INDEX accounts_domain ON accounts(domain);
CREATE INDEX accounts_cluster ON accounts(cluster_id);

CREATE TABLE addresses (
    address    VARCHAR(254) PRIMARY KEY,
    account    VARCHAR(254) NOT NULL REFERENCES accounts(address) ON DELETE CASCADE,
    is_primary BIGINT NOT NULL
);
CREATE INDEX addresses_account ON addresses(account);
