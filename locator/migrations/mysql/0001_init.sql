-- Tandem locator schema, MySQL/MariaDB (InnoDB for foreign keys).
-- Names are normalised ASCII, compared byte for byte (ascii_bin).
-- Primary addresses and aliases share one table so that the database itself
-- guarantees an address names at most one account.
CREATE TABLE domains (
    name    VARCHAR(253) CHARACTER SET ascii COLLATE ascii_bin PRIMARY KEY,
    created BIGINT NOT NULL
) ENGINE=InnoDB;

CREATE TABLE clusters (
    id      VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin PRIMARY KEY,
    state   VARCHAR(16) NOT NULL,
    weight  BIGINT NOT NULL,
    created BIGINT NOT NULL
) ENGINE=InnoDB;

CREATE TABLE nodes (
    cluster_id VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    node_id    VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    imap       VARCHAR(300),
    pop3       VARCHAR(300),
    lmtp       VARCHAR(300),
    http       VARCHAR(300),
    internal   VARCHAR(300),
    PRIMARY KEY (cluster_id, node_id),
    FOREIGN KEY (cluster_id) REFERENCES clusters(id)
) ENGINE=InnoDB;

CREATE TABLE accounts (
    address    VARCHAR(254) CHARACTER SET ascii COLLATE ascii_bin PRIMARY KEY,
    domain     VARCHAR(253) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    password   TEXT,
    cluster_id VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    state      VARCHAR(16) NOT NULL,
    quota      BIGINT NOT NULL,
    created    BIGINT NOT NULL,
    INDEX accounts_domain (domain),
    INDEX accounts_cluster (cluster_id),
    FOREIGN KEY (domain) REFERENCES domains(name),
    FOREIGN KEY (cluster_id) REFERENCES clusters(id)
) ENGINE=InnoDB;

CREATE TABLE addresses (
    address    VARCHAR(254) CHARACTER SET ascii COLLATE ascii_bin PRIMARY KEY,
    account    VARCHAR(254) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    is_primary BIGINT NOT NULL,
    INDEX addresses_account (account),
    FOREIGN KEY (account) REFERENCES accounts(address) ON DELETE CASCADE
) ENGINE=InnoDB;
