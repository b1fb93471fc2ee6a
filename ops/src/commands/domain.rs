//! `tandem domain add|list|rm`.

use shared::Domain;

use super::Ctx;
use crate::Failure;
use crate::cli::DomainCmd;

pub async fn run(ctx: &Ctx, cmd: DomainCmd) -> Result<(), Failure> {
    let parse = |s: &str| Domain::parse(s).map_err(|e| Failure::Usage(e.to_string()));
    match cmd {
        DomainCmd::Add { domain } => {
            let d = parse(&domain)?;
            ctx.dir.add_domain(&d).await?;
            ctx.done(&serde_json::json!({ "added": d }), || {
                format!("added domain {d}")
            })
        }
        DomainCmd::Rm { domain } => {
            let d = parse(&domain)?;
            ctx.dir.remove_domain(&d).await?;
            ctx.done(&serde_json::json!({ "removed": d }), || {
                format!("removed domain {d}")
            })
        }
        DomainCmd::List => {
            let ds = ctx.dir.domains().await?;
            ctx.done(&ds, || {
                ds.iter().map(|d| d.as_str()).collect::<Vec<_>>().join("\n")
            })
        }
    }
}
