//! `tandem account ...` and `tandem alias ...`.

use std::io::BufRead;

use locator::{Account, AccountChange, AccountState, NewAccount, placement};
use serde::Serialize;
use shared::Domain;

use super::{Ctx, address};
use crate::Failure;
use crate::cli::{AccountCmd, AliasCmd, PasswordArgs};
use crate::output;

/// An account as the CLI shows it: the hash stays secret, its scheme does not.
#[derive(Serialize)]
struct View<'a> {
    address: &'a str,
    aliases: Vec<&'a str>,
    cluster: &'a str,
    state: AccountState,
    quota: u64,
    password_scheme: Option<String>,
    created: String,
}

fn view(a: &Account) -> View<'_> {
    View {
        address: a.address.as_str(),
        aliases: a.aliases.iter().map(|x| x.as_str()).collect(),
        cluster: &a.cluster,
        state: a.state,
        quota: a.quota,
        password_scheme: a
            .password
            .as_deref()
            .map(|p| match shared::password::check_format(p) {
                Ok(s) => s.name().to_owned(),
                Err(_) => "unusable".to_owned(),
            }),
        created: shared::time::rfc3339(a.created),
    }
}

fn describe(a: &Account) -> String {
    let v = view(a);
    let aliases = if v.aliases.is_empty() {
        "-".to_owned()
    } else {
        v.aliases.join(", ")
    };
    format!(
        "address:  {}\naliases:  {aliases}\ncluster:  {}\nstate:    {}\nquota:    {}\npassword: {}\ncreated:  {}",
        v.address,
        v.cluster,
        v.state,
        output::quota(v.quota),
        v.password_scheme
            .as_deref()
            .unwrap_or("none (cannot log in)"),
        v.created
    )
}

/// Turns `--password-stdin` / `--password-hash` into a stored hash.
fn password(args: &PasswordArgs) -> Result<Option<String>, Failure> {
    if let Some(h) = &args.password_hash {
        shared::password::check_format(h)
            .map_err(|e| Failure::Usage(format!("--password-hash: {e}")))?;
        return Ok(Some(h.clone()));
    }
    if !args.password_stdin {
        return Ok(None);
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| Failure::Io(format!("reading the password from stdin: {e}")))?;
    let pw = line.trim_end_matches(['\r', '\n']);
    if pw.is_empty() {
        return Err(Failure::Usage("empty password on stdin".into()));
    }
    shared::password::hash(pw.as_bytes())
        .map(Some)
        .map_err(|e| Failure::Io(e.to_string()))
}

pub async fn run(ctx: &Ctx, cmd: AccountCmd) -> Result<(), Failure> {
    match cmd {
        AccountCmd::Add {
            address: a,
            cluster,
            password: pw,
            quota,
            suspended,
        } => {
            let address = address(&a)?;
            let password = password(&pw)?;
            let cluster = match cluster {
                Some(c) => c,
                None => {
                    let clusters = ctx.dir.clusters().await?;
                    let counts = ctx.dir.account_counts().await?;
                    placement::choose(&clusters, &counts)
                        .map(|c| c.id.clone())
                        .ok_or_else(|| {
                            Failure::Usage(
                                "no open cluster to place the account on: add one with `tandem cluster add ID`"
                                    .into(),
                            )
                        })?
                }
            };
            let state = if suspended {
                AccountState::Suspended
            } else {
                AccountState::Active
            };
            let acc = ctx
                .dir
                .add_account(&NewAccount {
                    address,
                    password,
                    cluster,
                    state,
                    quota,
                })
                .await?;
            ctx.done(&view(&acc), || {
                format!("added {} on cluster {}", acc.address, acc.cluster)
            })
        }
        AccountCmd::Show { address: a } => {
            let address = address(&a)?;
            let acc = ctx.dir.lookup(&address).await?.ok_or_else(|| {
                locator::DirectoryError::NotFound(format!("no account or alias {address}"))
            })?;
            ctx.done(&view(&acc), || describe(&acc))
        }
        AccountCmd::List { domain, cluster } => {
            let domain = domain
                .map(|d| Domain::parse(&d).map_err(|e| Failure::Usage(e.to_string())))
                .transpose()?;
            let mut accounts = ctx.dir.accounts(domain.as_ref()).await?;
            if let Some(c) = &cluster {
                accounts.retain(|a| &a.cluster == c);
            }
            if ctx.json {
                return output::json(&accounts.iter().map(view).collect::<Vec<_>>());
            }
            let rows: Vec<Vec<String>> = accounts
                .iter()
                .map(|a| {
                    vec![
                        a.address.to_string(),
                        a.cluster.clone(),
                        a.state.to_string(),
                        output::quota(a.quota),
                        a.aliases.len().to_string(),
                    ]
                })
                .collect();
            output::table(&["ADDRESS", "CLUSTER", "STATE", "QUOTA", "ALIASES"], &rows);
            Ok(())
        }
        AccountCmd::Passwd {
            address: a,
            password: pw,
            remove,
        } => {
            let address = address(&a)?;
            let new = if remove {
                None
            } else {
                Some(password(&pw)?.ok_or_else(|| {
                    Failure::Usage("give --password-stdin, --password-hash HASH or --remove".into())
                })?)
            };
            let change = AccountChange {
                password: Some(new),
                ..AccountChange::default()
            };
            let acc = ctx.dir.update_account(&address, &change).await?;
            ctx.done(&view(&acc), || {
                format!("password of {} changed", acc.address)
            })
        }
        AccountCmd::Quota { address: a, bytes } => {
            let change = AccountChange {
                quota: Some(bytes),
                ..AccountChange::default()
            };
            let acc = ctx.dir.update_account(&address(&a)?, &change).await?;
            ctx.done(&view(&acc), || {
                format!("quota of {} is {}", acc.address, output::quota(acc.quota))
            })
        }
        AccountCmd::Suspend { address: a } => set_state(ctx, &a, AccountState::Suspended).await,
        AccountCmd::Resume { address: a } => set_state(ctx, &a, AccountState::Active).await,
        AccountCmd::Rm { address: a } => {
            let address = address(&a)?;
            ctx.dir.remove_account(&address).await?;
            ctx.done(&serde_json::json!({ "removed": address }), || {
                format!("removed {address}")
            })
        }
        AccountCmd::Import(args) => super::import::run(ctx, args).await,
    }
}

async fn set_state(ctx: &Ctx, a: &str, state: AccountState) -> Result<(), Failure> {
    let change = AccountChange {
        state: Some(state),
        ..AccountChange::default()
    };
    let acc = ctx.dir.update_account(&address(a)?, &change).await?;
    ctx.done(&view(&acc), || format!("{} is {}", acc.address, acc.state))
}

pub async fn alias(ctx: &Ctx, cmd: AliasCmd) -> Result<(), Failure> {
    match cmd {
        AliasCmd::Add { alias, account } => {
            let (alias, account) = (address(&alias)?, address(&account)?);
            ctx.dir.add_alias(&alias, &account).await?;
            ctx.done(
                &serde_json::json!({ "alias": alias, "account": account }),
                || format!("{alias} now delivers to {account}"),
            )
        }
        AliasCmd::Rm { alias } => {
            let alias = address(&alias)?;
            ctx.dir.remove_alias(&alias).await?;
            ctx.done(&serde_json::json!({ "removed": alias }), || {
                format!("removed alias {alias}")
            })
        }
    }
}
