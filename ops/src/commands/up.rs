//! `tandem up --dir DIR`: a whole supercluster on one machine, from
//! nothing: an SQLite locator, two backend clusters of one node each (or of
//! `--nodes N`, sharing each cluster's store, with a local one-member etcd
//! started from the installed binary), one frontend, a self-signed
//! certificate, all as child processes of this one.
//! The config it writes stays in DIR, so `tandem --config DIR/tandem.yaml`
//! provisions accounts against it.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::time::Instant;

use locator::config::Open;
use locator::model::{ClusterState, Node};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

use crate::Failure;

/// How long a child may take to answer `/health`.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long children get to drain after Ctrl-C.
const STOP_TIMEOUT: Duration = Duration::from_secs(40);

struct Ports {
    imap: u16,
    imaps: u16,
    pop3: u16,
    pop3s: u16,
    /// MX, submission (STARTTLS) and submissions (implicit TLS).
    smtp: u16,
    submission: u16,
    submissions: u16,
    admin: u16,
    /// Per backend node: cluster c1's nodes, then c2's.
    backends: Vec<BackendPorts>,
    /// etcd's client and peer ports (used with several nodes per cluster).
    etcd: (u16, u16),
}

/// Backend clusters `up` runs.
const CLUSTERS: u16 = 2;

#[derive(Clone, Copy)]
struct BackendPorts {
    lmtp: u16,
    imap: u16,
    pop3: u16,
    admin: u16,
}

impl Ports {
    fn new(offset: u16, nodes: u16) -> Result<Ports, Failure> {
        let p = |base: u16| {
            base.checked_add(offset).ok_or_else(|| {
                Failure::Usage(format!(
                    "--port-offset {offset} pushes port {base} past 65535"
                ))
            })
        };
        let backend = |i: u16| -> Result<BackendPorts, Failure> {
            Ok(BackendPorts {
                lmtp: p(2424 + i)?,
                imap: p(2143 + i)?,
                pop3: p(2110 + i)?,
                admin: p(9101 + i)?,
            })
        };
        Ok(Ports {
            imap: p(1143)?,
            imaps: p(1993)?,
            pop3: p(1110)?,
            pop3s: p(1995)?,
            smtp: p(2525)?,
            submission: p(2587)?,
            submissions: p(2465)?,
            admin: p(9100)?,
            backends: (0..CLUSTERS * nodes)
                .map(backend)
                .collect::<Result<_, _>>()?,
            etcd: (p(2379)?, p(2380)?),
        })
    }
}

struct Daemon {
    name: String,
    child: Child,
    log: PathBuf,
    admin: u16,
}

pub async fn up(dir: &Path, offset: u16, nodes: u16, json: bool) -> Result<(), Failure> {
    let io = |what: &str, e: std::io::Error| Failure::Io(format!("{what}: {e}"));
    if !(1..=9).contains(&nodes) {
        return Err(Failure::Usage(format!(
            "--nodes {nodes}: between 1 and 9 nodes per cluster"
        )));
    }
    std::fs::create_dir_all(dir.join("logs")).map_err(|e| io(&dir.display().to_string(), e))?;
    let dir = dir
        .canonicalize()
        .map_err(|e| io(&dir.display().to_string(), e))?;
    let ports = Ports::new(offset, nodes)?;
    let secret = ensure_secret(&dir.join("proxy.secret"))?;
    let (cert, key) = ensure_certificate(&dir)?;
    let mut locator = format!(
        "locator:\n  sql:\n    url: sqlite://{}\n",
        dir.join("locator.db").display()
    );
    // Several nodes per cluster: a local etcd first, and every config
    // (backends, frontend, the CLI's) names it.
    let mut etcd = None;
    if nodes > 1 {
        let (client, peer) = ports.etcd;
        etcd = Some(start_etcd(&dir, client, peer).await?);
        locator.push_str(&format!(
            "etcd:\n  endpoints: [127.0.0.1:{client}]\n  prefix: /tandem-up\n"
        ));
    }
    // Frontends reach backends from 127.0.0.2, so the backends can demand
    // PROXY headers from it and still take direct loopback clients.
    let frontend = format!(
        "{locator}frontend:\n  source_address: 127.0.0.2\n  backend_login:\n    identity: tandem-proxy\n    secret_file: {secret}\n\
         \x20 tls:\n    cert: {cert}\n    key: {key}\n\
         \x20 listen:\n    imap: 127.0.0.1:{imap}\n    imaps: 127.0.0.1:{imaps}\n    pop3: 127.0.0.1:{pop3}\n    pop3s: 127.0.0.1:{pop3s}\n\
         \x20   smtp: 127.0.0.1:{smtp}\n    submission: 127.0.0.1:{submission}\n    submissions: 127.0.0.1:{submissions}\n    admin: 127.0.0.1:{admin}\n\
         \x20 queue:\n    dir: {queue}\n",
        queue = dir.join("queue").display(),
        smtp = ports.smtp,
        submission = ports.submission,
        submissions = ports.submissions,
        secret = secret.display(),
        cert = cert.display(),
        key = key.display(),
        imap = ports.imap,
        imaps = ports.imaps,
        pop3 = ports.pop3,
        pop3s = ports.pop3s,
        admin = ports.admin,
    );
    let main_config = dir.join("tandem.yaml");
    write(&main_config, &frontend)?;
    let cfg = crate::config::load(&main_config)?;
    let directory = locator::config::open(&cfg.locator, Open::Eager).await?;

    let mut daemons = Vec::new();
    for (k, b) in ports.backends.iter().enumerate() {
        let BackendPorts {
            lmtp,
            imap,
            pop3,
            admin,
        } = *b;
        let (c, j) = (k / nodes as usize, k % nodes as usize);
        let cluster = format!("c{}", c + 1);
        // One node per cluster keeps the names n1, n2 of earlier versions.
        let node = if nodes == 1 {
            format!("n{}", c + 1)
        } else {
            format!("c{}n{}", c + 1, j + 1)
        };
        let store = dir.join("store").join(&cluster);
        std::fs::create_dir_all(&store).map_err(|e| io(&store.display().to_string(), e))?;
        let text = format!(
            "{locator}backend:\n  cluster: {cluster}\n  store_root: {store}\n  hostname: {node}.tandem.local\n\
             \x20 proxy_protocol_from: [127.0.0.2/32]\n\
             \x20 proxy_login:\n    identity: tandem-proxy\n    secret_file: {secret}\n\
             \x20 tls:\n    cert: {cert}\n    key: {key}\n\
             \x20 listen:\n    lmtp: 127.0.0.1:{lmtp}\n    imap: 127.0.0.1:{imap}\n    pop3: 127.0.0.1:{pop3}\n    admin: 127.0.0.1:{admin}\n",
            store = store.display(),
            secret = secret.display(),
            cert = cert.display(),
            key = key.display(),
        );
        let path = dir.join(format!("backend-{node}.yaml"));
        write(&path, &text)?;
        if directory.cluster(&cluster).await?.is_none() {
            directory
                .add_cluster(&cluster, ClusterState::Open, 1)
                .await?;
        }
        let _ = directory.remove_node(&cluster, &node).await;
        directory
            .add_node(
                &cluster,
                &Node {
                    id: node.clone(),
                    imap: Some(format!("127.0.0.1:{imap}")),
                    pop3: Some(format!("127.0.0.1:{pop3}")),
                    lmtp: Some(format!("127.0.0.1:{lmtp}")),
                    http: None,
                    internal: None,
                },
            )
            .await?;
        daemons.push(spawn(
            &dir,
            &format!("backend-{node}"),
            &path,
            &["backend", "--node", &node],
            admin,
        )?);
    }
    daemons.push(spawn(
        &dir,
        "frontend",
        &main_config,
        &["frontend"],
        ports.admin,
    )?);
    drop(directory);

    if let Err(e) = wait_healthy(&mut daemons).await {
        stop_all(&mut daemons).await;
        stop_all(etcd.as_mut_slice()).await;
        return Err(e);
    }
    // The first node of each cluster.
    let first = |c: usize| ports.backends[c * nodes as usize];
    let endpoints = serde_json::json!({
        "config": main_config,
        "imap": format!("127.0.0.1:{}", ports.imap),
        "imaps": format!("127.0.0.1:{}", ports.imaps),
        "pop3": format!("127.0.0.1:{}", ports.pop3),
        "pop3s": format!("127.0.0.1:{}", ports.pop3s),
        "smtp": format!("127.0.0.1:{}", ports.smtp),
        "submission": format!("127.0.0.1:{}", ports.submission),
        "submissions": format!("127.0.0.1:{}", ports.submissions),
        "metrics": format!("http://127.0.0.1:{}/metrics", ports.admin),
        "lmtp": (0..CLUSTERS as usize)
            .map(|c| (format!("c{}", c + 1), format!("127.0.0.1:{}", first(c).lmtp)))
            .collect::<std::collections::BTreeMap<_, _>>(),
        "nodes_per_cluster": nodes,
        "etcd": etcd.as_ref().map(|_| format!("127.0.0.1:{}", ports.etcd.0)),
        "logs": dir.join("logs"),
    });
    if json {
        println!("{endpoints}");
    } else {
        let mut text = String::new();
        let _ = writeln!(
            text,
            "IMAP      127.0.0.1:{} (STARTTLS) IMAPS 127.0.0.1:{}",
            ports.imap, ports.imaps
        );
        let _ = writeln!(
            text,
            "POP3      127.0.0.1:{} (STLS)   POP3S 127.0.0.1:{}",
            ports.pop3, ports.pop3s
        );
        let _ = writeln!(
            text,
            "SMTP      127.0.0.1:{} (MX)     submission 127.0.0.1:{} (STARTTLS), 127.0.0.1:{} (TLS)",
            ports.smtp, ports.submission, ports.submissions
        );
        for c in 0..CLUSTERS as usize {
            let _ = writeln!(text, "LMTP c{}   127.0.0.1:{}", c + 1, first(c).lmtp);
        }
        if etcd.is_some() {
            let _ = writeln!(
                text,
                "etcd      127.0.0.1:{} ({nodes} nodes per cluster; tandem cluster status c1)",
                ports.etcd.0
            );
        }
        let _ = writeln!(text, "metrics   http://127.0.0.1:{}/metrics", ports.admin);
        let _ = writeln!(text, "logs      {}", dir.join("logs").display());
        let _ = writeln!(
            text,
            "provision tandem --config {} domain add example.com",
            main_config.display()
        );
        print!("{text}");
        println!("Tandem is up. Ctrl-C stops it.");
    }

    let outcome = wait_for_stop(&mut daemons).await;
    stop_all(&mut daemons).await;
    // etcd last: draining nodes still renew their leases.
    stop_all(etcd.as_mut_slice()).await;
    outcome
}

/// Starts a one-member etcd with its data in DIR/etcd; returns once healthy.
async fn start_etcd(dir: &Path, client: u16, peer: u16) -> Result<Daemon, Failure> {
    let bin = ["/usr/bin/etcd", "/usr/local/bin/etcd"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .ok_or_else(|| {
            Failure::Usage(
                "etcd not found (needed by --nodes above 1): install the Debian package etcd-server"
                    .into(),
            )
        })?;
    let data = dir.join("etcd");
    let (c, p) = (
        format!("http://127.0.0.1:{client}"),
        format!("http://127.0.0.1:{peer}"),
    );
    let args = [
        "--name",
        "tandem-up",
        "--data-dir",
        &data.to_string_lossy(),
        "--listen-client-urls",
        &c,
        "--advertise-client-urls",
        &c,
        "--listen-peer-urls",
        &p,
        "--initial-advertise-peer-urls",
        &p,
        "--initial-cluster",
        &format!("tandem-up={p}"),
    ]
    .map(|a| a.to_owned());
    let mut d = spawn_program(dir, "etcd", &bin, &args, client)?;
    wait_healthy(std::slice::from_mut(&mut d)).await?;
    Ok(d)
}

fn write(path: &Path, text: &str) -> Result<(), Failure> {
    std::fs::write(path, text).map_err(|e| Failure::Io(format!("{}: {e}", path.display())))
}

fn ensure_secret(path: &Path) -> Result<PathBuf, Failure> {
    if !path.exists() {
        let bytes: [u8; 32] = rand::random();
        let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        write(path, &secret)?;
    }
    Ok(path.to_owned())
}

fn ensure_certificate(dir: &Path) -> Result<(PathBuf, PathBuf), Failure> {
    let (cert, key) = (dir.join("tls.crt"), dir.join("tls.key"));
    if !cert.exists() || !key.exists() {
        let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        let ck = rcgen::generate_simple_self_signed(names)
            .map_err(|e| Failure::Io(format!("generating a certificate: {e}")))?;
        write(&cert, &ck.cert.pem())?;
        write(&key, &ck.signing_key.serialize_pem())?;
    }
    Ok((cert, key))
}

fn spawn(
    dir: &Path,
    name: &str,
    config: &Path,
    args: &[&str],
    admin: u16,
) -> Result<Daemon, Failure> {
    let exe = std::env::current_exe().map_err(|e| Failure::Io(format!("own executable: {e}")))?;
    let mut all = vec!["--config".to_owned(), config.to_string_lossy().into_owned()];
    all.extend(args.iter().map(|a| (*a).to_owned()));
    spawn_program(dir, name, &exe, &all, admin)
}

/// Runs `program args` with its output in DIR/logs/NAME.log; `admin` is
/// where it answers `GET /health`.
fn spawn_program(
    dir: &Path,
    name: &str,
    program: &Path,
    args: &[String],
    admin: u16,
) -> Result<Daemon, Failure> {
    let log = dir.join("logs").join(format!("{name}.log"));
    let out =
        std::fs::File::create(&log).map_err(|e| Failure::Io(format!("{}: {e}", log.display())))?;
    let err = out.try_clone().map_err(|e| Failure::Io(e.to_string()))?;
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| Failure::Io(format!("starting {name}: {e}")))?;
    Ok(Daemon {
        name: name.to_owned(),
        child,
        log,
        admin,
    })
}

async fn healthy(port: u16) -> bool {
    let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    if s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .is_err()
    {
        return false;
    }
    let mut buf = [0u8; 16];
    let n = s.read(&mut buf).await.unwrap_or(0);
    buf[..n].starts_with(b"HTTP/1.1 200")
}

async fn wait_healthy(daemons: &mut [Daemon]) -> Result<(), Failure> {
    let deadline = Instant::now() + START_TIMEOUT;
    for d in daemons.iter_mut() {
        loop {
            if let Ok(Some(status)) = d.child.try_wait() {
                return Err(Failure::Io(format!(
                    "{} exited ({status}) while starting; see {}:\n{}",
                    d.name,
                    d.log.display(),
                    tail(&d.log)
                )));
            }
            if healthy(d.admin).await {
                break;
            }
            if Instant::now() > deadline {
                return Err(Failure::Io(format!(
                    "{} did not become healthy; see {}",
                    d.name,
                    d.log.display()
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

/// Until Ctrl-C / SIGTERM (Ok) or a child dies (Err).
async fn wait_for_stop(daemons: &mut [Daemon]) -> Result<(), Failure> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).map_err(|e| Failure::Io(e.to_string()))?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| Failure::Io(e.to_string()))?;
    loop {
        tokio::select! {
            _ = term.recv() => return Ok(()),
            _ = int.recv() => return Ok(()),
            _ = tokio::time::sleep(Duration::from_millis(500)) => {
                for d in daemons.iter_mut() {
                    if let Ok(Some(status)) = d.child.try_wait() {
                        return Err(Failure::Io(format!("{} exited ({status}); see {}:\n{}", d.name, d.log.display(), tail(&d.log))));
                    }
                }
            }
        }
    }
}

async fn stop_all(daemons: &mut [Daemon]) {
    for d in daemons.iter() {
        if let Some(pid) = d
            .child
            .id()
            .and_then(|p| rustix::process::Pid::from_raw(p as i32))
        {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
    }
    for d in daemons.iter_mut() {
        if tokio::time::timeout(STOP_TIMEOUT, d.child.wait())
            .await
            .is_err()
        {
            let _ = d.child.kill().await;
        }
    }
}

fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}
