//! What every protocol served by a backend node shares.

use crate::accounts::Accounts;
use crate::auth::Auth;
use crate::cluster::Peers;

pub struct Node {
    /// This node's id in the locator (`tandem node add`).
    pub id: String,
    /// The cluster it serves.
    pub cluster: String,
    /// Said in greetings and `Received:` headers.
    pub hostname: String,
    pub auth: Auth,
    pub accounts: Accounts,
    /// The other nodes, to proxy a session to its account's owner.
    pub peers: Peers,
}
