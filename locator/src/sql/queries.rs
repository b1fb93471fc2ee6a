//! Every statement the SQL directory runs, written once with `?` placeholders
//! and prepared for the dialect when the directory opens.

use std::sync::OnceLock;

use super::dialect::Dialect;

macro_rules! queries {
    ($($name:ident = $sql:expr;)+) => {
        /// The statements, rewritten for one dialect.
        pub struct Queries { $(pub $name: String,)+ }

        impl Queries {
            fn new(d: Dialect) -> Self {
                Queries { $($name: d.rewrite($sql),)+ }
            }
        }
    };
}

/// Columns of an account followed by one alias (NULL when it has none); an
/// account with n aliases comes back as n rows.
macro_rules! account_columns {
    () => {
        "a.address, a.password, a.cluster_id, a.state, a.quota, a.created, x.address AS alias"
    };
}

queries! {
    lookup = concat!("SELECT ", account_columns!(), "
        FROM addresses n
        JOIN accounts a ON a.address = n.account
        LEFT JOIN addresses x ON x.account = a.address AND x.is_primary = 0
        WHERE n.address = ?
        ORDER BY x.address");
    accounts_all = concat!("SELECT ", account_columns!(), "
        FROM accounts a
        LEFT JOIN addresses x ON x.account = a.address AND x.is_primary = 0
        ORDER BY a.address, x.address");
    accounts_in_domain = concat!("SELECT ", account_columns!(), "
        FROM accounts a
        LEFT JOIN addresses x ON x.account = a.address AND x.is_primary = 0
        WHERE a.domain = ?
        ORDER BY a.address, x.address");
    address_owner = "SELECT account, is_primary FROM addresses WHERE address = ?";
    account_row = "SELECT password, cluster_id, state, quota FROM accounts WHERE address = ?";
    insert_account = "INSERT INTO accounts (address, domain, password, cluster_id, state, quota, created)
        VALUES (?, ?, ?, ?, ?, ?, ?)";
    insert_address = "INSERT INTO addresses (address, account, is_primary) VALUES (?, ?, ?)";
    update_account = "UPDATE accounts SET password = ?, cluster_id = ?, state = ?, quota = ? WHERE address = ?";
    delete_addresses_of = "DELETE FROM addresses WHERE account = ?";
    delete_account = "DELETE FROM accounts WHERE address = ?";
    delete_alias = "DELETE FROM addresses WHERE address = ? AND is_primary = 0";

    domain_exists = "SELECT name FROM domains WHERE name = ?";
    insert_domain = "INSERT INTO domains (name, created) VALUES (?, ?)";
    delete_domain = "DELETE FROM domains WHERE name = ?";
    domains = "SELECT name FROM domains ORDER BY name";
    domain_accounts = "SELECT COUNT(*) FROM accounts WHERE domain = ?";
    // Domains are LDH names, so they hold no LIKE wildcards.
    domain_aliases = "SELECT COUNT(*) FROM addresses WHERE is_primary = 0 AND address LIKE ?";

    cluster_row = "SELECT id, state, weight FROM clusters WHERE id = ?";
    clusters = "SELECT id, state, weight FROM clusters ORDER BY id";
    insert_cluster = "INSERT INTO clusters (id, state, weight, created) VALUES (?, ?, ?, ?)";
    update_cluster = "UPDATE clusters SET state = ?, weight = ? WHERE id = ?";
    delete_cluster = "DELETE FROM clusters WHERE id = ?";
    cluster_accounts = "SELECT COUNT(*) FROM accounts WHERE cluster_id = ?";
    cluster_nodes_count = "SELECT COUNT(*) FROM nodes WHERE cluster_id = ?";
    nodes_all = "SELECT cluster_id, node_id, imap, pop3, lmtp, http, internal FROM nodes ORDER BY cluster_id, node_id";
    nodes_of = "SELECT cluster_id, node_id, imap, pop3, lmtp, http, internal FROM nodes WHERE cluster_id = ? ORDER BY node_id";
    node_exists = "SELECT node_id FROM nodes WHERE cluster_id = ? AND node_id = ?";
    insert_node = "INSERT INTO nodes (cluster_id, node_id, imap, pop3, lmtp, http, internal) VALUES (?, ?, ?, ?, ?, ?, ?)";
    delete_node = "DELETE FROM nodes WHERE cluster_id = ? AND node_id = ?";

    account_counts = "SELECT cluster_id, COUNT(*) FROM accounts GROUP BY cluster_id";
}

impl Queries {
    /// The statements for `d`, prepared once per process. sqlx only takes
    /// `'static` SQL text without an audit wrapper, which these are.
    pub fn get(d: Dialect) -> &'static Queries {
        static SQLITE: OnceLock<Queries> = OnceLock::new();
        static POSTGRES: OnceLock<Queries> = OnceLock::new();
        static MYSQL: OnceLock<Queries> = OnceLock::new();
        let cell = match d {
            Dialect::Sqlite => &SQLITE,
            Dialect::Postgres => &POSTGRES,
            Dialect::MySql => &MYSQL,
        };
        cell.get_or_init(|| Queries::new(d))
    }
}
