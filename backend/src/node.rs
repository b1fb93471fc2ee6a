//! What every protocol served by a backend node shares.

use std::net::SocketAddr;

use shared::Address;

use crate::accounts::Accounts;
use crate::auth::Auth;
use crate::cluster::Peers;
use crate::cluster::peer::{Service, Upstream};

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

impl Node {
    /// Logs in on `owner`, the node holding `account`, for a session
    /// from `client` that landed here.
    pub async fn connect_owner(
        &self,
        owner: &str,
        service: Service,
        account: &Address,
        client: SocketAddr,
        session: &str,
    ) -> Result<Upstream, String> {
        self.peers
            .connect(
                self.auth.locator(),
                &self.cluster,
                owner,
                service,
                account,
                client,
                session,
            )
            .await
    }
}
