//! Dynamic clusters: a real 3-member etcd and a 3-node Tandem cluster on
//! loopback sharing one store. Sessions of one account meet on its owner
//! whatever node they log in on; the owner's death moves the account within
//! the lease TTL; an etcd member's death changes nothing; a node cut off
//! from etcd fences itself before another node takes its accounts over.

use std::time::Duration;

use tokio::time::Instant;

use tests::backend::Backend;
use tests::clients::{imap_can_login, imap_subjects, lmtp_send, python};
use tests::forward::Forwarder;
use tests::servers::EtcdCluster;

const USER: &str = "alice@example.com";
const PASS: &str = "alice-pw";
const TTL: Duration = Duration::from_secs(3);

fn etcd_yaml(endpoints: &[String]) -> String {
    etcd_yaml_ttl(endpoints, TTL)
}

fn etcd_yaml_ttl(endpoints: &[String], ttl: Duration) -> String {
    format!(
        "etcd:\n  endpoints: [{}]\n  lease_ttl: {}s\n  request_timeout: 500ms\n",
        endpoints.join(", "),
        ttl.as_secs()
    )
}

/// Three nodes of cluster c1 on one store; the third talks to etcd through
/// `n3_endpoints` when given.
fn three_nodes(etcd: &EtcdCluster, n3_endpoints: Option<Vec<String>>) -> Vec<Backend> {
    let yaml = etcd_yaml(&etcd.endpoints());
    let n1 = Backend::start_with(&yaml).expect("n1");
    n1.add_account(USER, PASS).expect("account");
    let n2 = Backend::start_peer(&n1, "n2", &yaml).expect("n2");
    let n3_yaml = n3_endpoints.map(|e| etcd_yaml(&e)).unwrap_or(yaml);
    let n3 = Backend::start_peer(&n1, "n3", &n3_yaml).expect("n3");
    vec![n1, n2, n3]
}

fn status(b: &Backend) -> serde_json::Value {
    let out = b
        .tandem_ok(&["--json", "cluster", "status", "c1"])
        .expect("cluster status");
    serde_json::from_str(&out).expect("json")
}

fn owned_by(b: &Backend, node: &str) -> Vec<String> {
    status(b)
        .as_array()
        .expect("a list")
        .iter()
        .filter(|n| n["id"] == node)
        .flat_map(|n| n["owned"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| a.as_str().map(str::to_owned))
        .collect()
}

/// A metric's value, 0 when absent.
fn metric(b: &Backend, name: &str) -> f64 {
    b.metrics()
        .lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// Logs in on `port`, APPENDs `subjects` (each acknowledged), prints the
/// UIDs of INBOX; prints nothing when the login is refused.
const APPEND: &str = r#"
import imaplib, sys
m = imaplib.IMAP4('127.0.0.1', int(sys.argv[1]))
try:
    m.login('alice@example.com', 'alice-pw')
except imaplib.IMAP4.error as e:
    sys.exit(0)
for s in sys.argv[2:]:
    typ, _ = m.append('INBOX', None, None, ('Subject: %s\r\n\r\nbody %s\r\n' % (s, s)).encode())
    assert typ == 'OK', typ
m.select('INBOX')
typ, data = m.uid('SEARCH', None, 'ALL')
print(data[0].decode())
m.logout()
"#;

fn imap_port(b: &Backend) -> String {
    b.imap_addr().port().to_string()
}

#[test]
fn sessions_through_different_nodes_see_each_other_live() {
    let etcd = EtcdCluster::start(3).expect("etcd");
    let nodes = three_nodes(&etcd, None);
    let (n1, n2, n3) = (&nodes[0], &nodes[1], &nodes[2]);
    let script = r#"
import imaplib, sys, time
a = imaplib.IMAP4('127.0.0.1', int(sys.argv[1]))
a.login('alice@example.com', 'alice-pw')
a.select('INBOX')
b = imaplib.IMAP4('127.0.0.1', int(sys.argv[2]))
typ, data = b.login('alice@example.com', 'alice-pw')
print('b login', typ)
b.select('INBOX')
b.append('INBOX', None, None, b'Subject: from b\r\n\r\nhello\r\n')
a.untagged_responses.clear()
a.noop()
print('a sees', a.untagged_responses.get('EXISTS'))
a.append('INBOX', None, None, b'Subject: from a\r\n\r\nhello\r\n')
# IDLE on b wakes with the EXISTS of a's APPEND.
tag = b._new_tag()
b.send(tag + b' IDLE\r\n')
seen, idling = [], False
while not (seen and idling):
    line = b.readline()
    if line.startswith(b'+'):
        idling = True
    elif b'EXISTS' in line:
        seen.append(line.decode().strip())
b.send(b'DONE\r\n')
while not b.readline().startswith(tag):
    pass
print('b idle', seen)
ua = a.uid('SEARCH', None, 'ALL')[1][0].decode()
ub = b.uid('SEARCH', None, 'ALL')[1][0].decode()
print('uids', ua, '|', ub)
a.logout(); b.logout()
"#;
    let out = python(script, &[&imap_port(n1), &imap_port(n2)]);
    assert!(out.contains("b login OK"), "{out}");
    assert!(out.contains("a sees [b'1']"), "{out}");
    // (b's EXISTS may come before or after the IDLE continuation.)
    assert!(out.contains("b idle ['* 2 EXISTS']"), "{out}");
    assert!(out.contains("uids 1 2 | 1 2"), "{out}");

    // POP3 through the third node lands on the owner too.
    let pop = r#"
import poplib, sys
p = poplib.POP3('127.0.0.1', int(sys.argv[1]))
p.user('alice@example.com'); p.pass_('alice-pw')
print('stat', p.stat())
p.quit()
"#;
    let out = python(pop, &[&n3.pop3_addr().port().to_string()]);
    assert!(out.contains("stat (2,"), "{out}");

    // The owner is n1; n2 and n3 proxied.
    let st = status(n1);
    let ids: Vec<&str> = st
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|n| n["id"].as_str())
        .collect();
    assert_eq!(ids, ["n1", "n2", "n3"], "{st}");
    for n in st.as_array().expect("list") {
        assert!(
            n["host"].is_string() && n["pid"].as_u64().unwrap_or(0) > 0,
            "{n}"
        );
    }
    assert_eq!(owned_by(n1, "n1"), [USER]);
    assert_eq!(
        metric(
            n2,
            "tandem_cluster_proxied_sessions_total{protocol=\"imap\"}"
        ),
        1.0
    );
    assert_eq!(
        metric(
            n3,
            "tandem_cluster_proxied_sessions_total{protocol=\"pop3\"}"
        ),
        1.0
    );
    assert_eq!(metric(n1, "tandem_cluster_owned_accounts"), 1.0);
}

#[test]
fn the_owners_death_moves_the_account_within_the_ttl() {
    let etcd = EtcdCluster::start(3).expect("etcd");
    let mut nodes = three_nodes(&etcd, None);
    // n1 owns alice; messages go in through every node, each acknowledged.
    let uids = python(APPEND, &[&imap_port(&nodes[0]), "a1", "a2"]);
    assert_eq!(uids.trim(), "1 2");
    python(APPEND, &[&imap_port(&nodes[1]), "b1"]);
    for (i, n) in nodes.iter().enumerate() {
        let msg = format!("Subject: lmtp{i}\r\n\r\nvia lmtp\r\n");
        assert_eq!(
            lmtp_send(n.lmtp_addr(), "bob@example.org", &[USER], msg.as_bytes()),
            ""
        );
    }
    assert_eq!(owned_by(&nodes[1], "n1"), [USER]);

    nodes[0].kill();
    let killed = Instant::now();
    let mut served = None;
    while killed.elapsed() < TTL * 3 {
        if imap_can_login(nodes[1].imap_addr(), USER, PASS) {
            served = Some(killed.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let served = served.expect("the account was never served again");
    eprintln!("account served again {served:?} after SIGKILL of its owner");
    assert!(served <= TTL + Duration::from_secs(1), "{served:?}");

    let list = imap_subjects(nodes[1].imap_addr(), USER, PASS);
    let subjects: Vec<&str> = list.iter().map(|(_, s)| s.as_str()).collect();
    for s in ["a1", "a2", "b1", "lmtp0", "lmtp1", "lmtp2"] {
        assert!(subjects.contains(&s), "{s} lost: {list:?}");
    }
    assert_eq!(subjects.len(), 6, "{list:?}");
    let new_owner = if owned_by(&nodes[1], "n2") == [USER] {
        &nodes[1]
    } else {
        &nodes[2]
    };
    assert_eq!(metric(new_owner, "tandem_cluster_takeovers_total"), 1.0);
}

#[test]
fn killing_one_etcd_member_changes_nothing() {
    let mut etcd = EtcdCluster::start(3).expect("etcd");
    // The default TTL: losing the leader costs an election (about a
    // second), which a node must ride out without fencing.
    let ttl = Duration::from_secs(5);
    let yaml = etcd_yaml_ttl(&etcd.endpoints(), ttl);
    let n1 = Backend::start_with(&yaml).expect("n1");
    n1.add_account(USER, PASS).expect("account");
    let n2 = Backend::start_peer(&n1, "n2", &yaml).expect("n2");
    let n3 = Backend::start_peer(&n1, "n3", &yaml).expect("n3");
    let nodes = [n1, n2, n3];
    python(APPEND, &[&imap_port(&nodes[0]), "before"]);
    // The leader: the worst member to lose.
    let leader = etcd.leader().expect("a leader");
    etcd.kill(leader);
    // Longer than two TTLs: every lease must have been renewed through
    // the members left.
    std::thread::sleep(ttl * 2 + Duration::from_secs(1));
    for (i, n) in nodes.iter().enumerate() {
        let out = python(APPEND, &[&imap_port(n), &format!("after{i}")]);
        assert_eq!(out.trim().split(' ').count(), 2 + i, "{out}");
        assert_eq!(
            metric(n, "tandem_cluster_fencing_events_total"),
            0.0,
            "n{}: {}",
            i + 1,
            n.log_tail()
        );
        assert_eq!(metric(n, "tandem_cluster_leases_total"), 1.0, "n{}", i + 1);
    }
    assert_eq!(owned_by(&nodes[2], "n1"), [USER]);
}

#[test]
fn a_node_cut_off_from_etcd_fences_itself_before_its_account_moves() {
    let etcd = EtcdCluster::start(3).expect("etcd");
    let members: Vec<_> = etcd.members().iter().map(|m| m.client).collect();
    let forwarders: Vec<Forwarder> = members
        .iter()
        .map(|m| Forwarder::start(*m).expect("forwarder"))
        .collect();
    let via: Vec<String> = forwarders.iter().map(|f| f.addr().to_string()).collect();
    let nodes = three_nodes(&etcd, Some(via));
    let (n1, n3) = (&nodes[0], &nodes[2]);
    // n3 owns alice, and has a session on it that keeps asking.
    assert_eq!(python(APPEND, &[&imap_port(n3), "m1", "m2"]).trim(), "1 2");
    assert_eq!(owned_by(n1, "n3"), [USER]);
    let watcher = r#"
import imaplib, sys, time
m = imaplib.IMAP4('127.0.0.1', int(sys.argv[1]))
m.login('alice@example.com', 'alice-pw')
m.select('INBOX')
print('ready', flush=True)
start = time.time()
try:
    while time.time() - start < 20:
        m.noop()
        time.sleep(0.1)
    print('never closed')
except imaplib.IMAP4.abort as e:
    print('closed', e)
"#;
    let mut watch = std::process::Command::new("python3")
        .args(["-c", watcher, &imap_port(n3)])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 (Debian package python3)");
    let mut stdout = std::io::BufReader::new(watch.stdout.take().expect("stdout"));
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut line).expect("ready");
    assert_eq!(line.trim(), "ready");

    let cut = Instant::now();
    for f in &forwarders {
        f.cut();
    }
    // Another node gets the account once n3's lease expired, never before
    // n3 fenced. Until then a login on n1 is proxied to n3 (still the
    // owner) or refused (n3 fenced, its lease not yet expired).
    let port = imap_port(n1);
    let mut taken = None;
    while cut.elapsed() < TTL * 4 {
        if imap_can_login(n1.imap_addr(), USER, PASS) && owned_by(n1, "n1") == [USER] {
            taken = Some(cut.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let taken = taken.expect("account never taken over");
    assert_eq!(python(APPEND, &[&port, "m3"]).trim(), "1 2 3");
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).expect("watcher");
    let _ = watch.wait();
    assert!(
        rest.contains("closed") && rest.contains("UNAVAILABLE"),
        "{rest}"
    );
    eprintln!("cut at 0; account served by n1 after {taken:?}");
    assert!(n3.log().contains("fenced"), "{}", n3.log_tail());
    assert_eq!(metric(n3, "tandem_cluster_fencing_events_total"), 1.0);
    assert_eq!(metric(n3, "tandem_cluster_owned_accounts"), 0.0);
    assert_eq!(owned_by(n1, "n1"), [USER]);

    // n3 comes back: a new lease, and its sessions of alice go to n1.
    for f in &forwarders {
        f.heal();
    }
    let until = Instant::now() + TTL * 3;
    while metric(n3, "tandem_cluster_leases_total") < 2.0 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = python(APPEND, &[&imap_port(n3), "m4"]);
    assert_eq!(
        out.trim(),
        "1 2 3 4",
        "no double writer: UIDs unique and in order"
    );
    // Every acknowledged message is in the Maildir exactly once.
    let list = imap_subjects(nodes[1].imap_addr(), USER, PASS);
    let subjects: Vec<&str> = list.iter().map(|(_, s)| s.as_str()).collect();
    assert_eq!(subjects, ["m1", "m2", "m3", "m4"], "{list:?}");
    let dir = n1.maildir(USER);
    let files = ["cur", "new"]
        .iter()
        .map(|d| {
            std::fs::read_dir(dir.join(d))
                .map(|r| r.count())
                .unwrap_or(0)
        })
        .sum::<usize>();
    assert_eq!(files, 4, "message files in {}", dir.display());
}

#[test]
fn an_idle_account_is_released_and_another_node_may_take_it() {
    let etcd = EtcdCluster::start(3).expect("etcd");
    let yaml = format!("{}  release_idle_after: 1s\n", etcd_yaml(&etcd.endpoints()));
    let n1 = Backend::start_with(&yaml).expect("n1");
    n1.add_account(USER, PASS).expect("account");
    let n2 = Backend::start_peer(&n1, "n2", &yaml).expect("n2");
    assert_eq!(python(APPEND, &[&imap_port(&n2), "m1"]).trim(), "1");
    assert_eq!(owned_by(&n1, "n2"), [USER]);
    // No session left: released after the idle period.
    let until = Instant::now() + Duration::from_secs(10);
    while !owned_by(&n1, "n2").is_empty() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(owned_by(&n1, "n2").is_empty(), "{}", n2.log_tail());
    assert_eq!(metric(&n2, "tandem_cluster_releases_total"), 1.0);
    assert_eq!(metric(&n2, "tandem_cluster_owned_accounts"), 0.0);
    // The next session takes it where it lands, and it is no takeover.
    assert_eq!(python(APPEND, &[&imap_port(&n1), "m2"]).trim(), "1 2");
    assert_eq!(owned_by(&n1, "n1"), [USER]);
    assert_eq!(metric(&n1, "tandem_cluster_takeovers_total"), 0.0);
    assert_eq!(metric(&n1, "tandem_cluster_acquisitions_total"), 1.0);
}

#[test]
fn a_frontend_with_etcd_routes_sessions_straight_to_the_owner() {
    use tests::frontend::Frontend;
    let etcd = EtcdCluster::start(3).expect("etcd");
    let nodes = three_nodes(&etcd, None);
    // n2 owns alice.
    assert_eq!(python(APPEND, &[&imap_port(&nodes[1]), "m1"]).trim(), "1");
    let proxied = |nodes: &[Backend]| -> f64 {
        nodes
            .iter()
            .map(|n| {
                metric(
                    n,
                    "tandem_cluster_proxied_sessions_total{protocol=\"imap\"}",
                )
            })
            .sum()
    };
    let knows = Frontend::start(&nodes[0], &etcd_yaml(&etcd.endpoints())).expect("frontend");
    for _ in 0..6 {
        assert_eq!(
            python(APPEND, &[&knows.imap_addr().port().to_string()]).trim(),
            "1"
        );
    }
    assert_eq!(proxied(&nodes), 0.0, "every session went straight to n2");
    // Without etcd the frontend spreads sessions, and the other nodes
    // proxy theirs to n2.
    let blind = Frontend::start(&nodes[0], "").expect("frontend");
    for _ in 0..6 {
        assert_eq!(
            python(APPEND, &[&blind.imap_addr().port().to_string()]).trim(),
            "1"
        );
    }
    assert!(proxied(&nodes) >= 2.0, "{}", proxied(&nodes));
    assert_eq!(owned_by(&nodes[0], "n2"), [USER]);
}

#[test]
fn concurrent_first_logins_on_every_node_all_succeed() {
    use tests::load::{Proto, Session};
    let etcd = EtcdCluster::start(3).expect("etcd");
    let nodes = three_nodes(&etcd, None);
    let users: Vec<String> = (0..8).map(|i| format!("race{i}@example.com")).collect();
    for u in &users {
        nodes[0].add_account(u, PASS).expect("account");
    }
    let imap: Vec<std::net::SocketAddr> = nodes.iter().map(Backend::imap_addr).collect();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let failures: Vec<String> = rt.block_on(async {
        let mut tasks = Vec::new();
        // Every account at once from all three nodes, twice each: the
        // claims race in etcd and on each node.
        for u in &users {
            for addr in imap.iter().chain(imap.iter()) {
                let (u, addr) = (u.clone(), *addr);
                tasks.push(tokio::spawn(async move {
                    let mut s = Session::connect(addr, Proto::Imap).await?;
                    s.login_select(&u, PASS).await?;
                    s.imap("NOOP").await?;
                    s.logout().await
                }));
            }
        }
        let mut failures = Vec::new();
        for t in tasks {
            match t.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => failures.push(format!("{e:#}")),
                Err(e) => failures.push(e.to_string()),
            }
        }
        failures
    });
    assert!(
        failures.is_empty(),
        "{failures:#?}\n{}",
        nodes[0].log_tail()
    );
    // Each account has exactly one owner.
    let st = status(&nodes[0]);
    let owned: usize = st
        .as_array()
        .expect("list")
        .iter()
        .map(|n| n["owned"].as_array().map_or(0, Vec::len))
        .sum();
    assert_eq!(owned, users.len(), "{st}");
}

/// The Maildir as another process sees it: file names in `new/` and `cur/`
/// and the bytes of the UID list.
fn maildir_snapshot(dir: &std::path::Path) -> (Vec<String>, Vec<u8>) {
    let mut names = Vec::new();
    for sub in ["new", "cur"] {
        for e in std::fs::read_dir(dir.join(sub))
            .expect("read_dir")
            .flatten()
        {
            names.push(format!("{sub}/{}", e.file_name().to_string_lossy()));
        }
    }
    names.sort();
    let list = std::fs::read(dir.join("tandem-uidlist")).expect("tandem-uidlist");
    (names, list)
}

#[test]
fn a_node_stopped_past_its_lease_writes_nothing_when_it_resumes() {
    use rustix::process::{Pid, Signal, kill_process};
    let etcd = EtcdCluster::start(1).expect("etcd");
    let yaml = etcd_yaml(&etcd.endpoints());
    let n1 = Backend::start_with(&yaml).expect("n1");
    n1.add_account(USER, PASS).expect("account");
    let n2 = Backend::start_peer(&n1, "n2", &yaml).expect("n2");
    assert_eq!(python(APPEND, &[&imap_port(&n1), "m1"]).trim(), "1");
    assert_eq!(owned_by(&n2, "n1"), [USER]);

    // A session on n1 that writes a STORE and an APPEND (LITERAL+) to its
    // socket while n1 is stopped, then reads what n1 answers on resuming.
    let client = r#"
import imaplib, socket, sys
m = imaplib.IMAP4('127.0.0.1', int(sys.argv[1]))
m.login('alice@example.com', 'alice-pw')
m.select('INBOX')
print('ready', flush=True)
sys.stdin.readline()
msg = b'Subject: late\r\n\r\nwritten by a stopped node\r\n'
m.send(b'a1 UID STORE 1 +FLAGS (\\Flagged)\r\n')
m.send(b'a2 APPEND INBOX {%d+}\r\n' % len(msg) + msg + b'\r\n')
print('queued', flush=True)
sys.stdin.readline()
m.sock.settimeout(20)
got = b''
try:
    while b'a2 ' not in got:
        chunk = m.sock.recv(65536)
        if not chunk:
            break
        got += chunk
except socket.timeout:
    got += b'(timeout)'
print(got.decode(errors='replace').replace('\r\n', ' | '))
"#;
    let mut py = std::process::Command::new("python3")
        .args(["-c", client, &imap_port(&n1)])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 (Debian package python3)");
    let mut stdin = py.stdin.take().expect("stdin");
    let mut stdout = std::io::BufReader::new(py.stdout.take().expect("stdout"));
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut line).expect("ready");
    assert_eq!(line.trim(), "ready");

    let pid = Pid::from_raw(n1.pid().expect("n1 runs") as i32).expect("pid");
    kill_process(pid, Signal::STOP).expect("SIGSTOP n1");
    let stopped = Instant::now();
    std::io::Write::write_all(&mut stdin, b"go\n").expect("go");
    line.clear();
    std::io::BufRead::read_line(&mut stdout, &mut line).expect("queued");
    assert_eq!(line.trim(), "queued");

    // n2 takes alice once n1's lease expired, and writes: an APPEND, a flag
    // change, and an LMTP delivery.
    let mut taken = false;
    while !taken && stopped.elapsed() < TTL * 5 {
        taken = imap_can_login(n2.imap_addr(), USER, PASS) && owned_by(&n2, "n2") == [USER];
        if !taken {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    assert!(taken, "n2 never took alice: {}", n2.log_tail());
    eprintln!("n1 stopped; n2 took alice after {:?}", stopped.elapsed());
    assert!(stopped.elapsed() >= TTL - Duration::from_secs(1));
    let flag = r#"
import imaplib, sys
m = imaplib.IMAP4('127.0.0.1', int(sys.argv[1]))
m.login('alice@example.com', 'alice-pw')
m.append('INBOX', None, None, b'Subject: m2\r\n\r\nby n2\r\n')
m.select('INBOX')
print(m.uid('STORE', '1', '+FLAGS', '(\\Seen)')[0])
m.logout()
"#;
    assert_eq!(python(flag, &[&imap_port(&n2)]).trim(), "OK");
    let msg = b"Subject: m3\r\n\r\nvia lmtp on n2\r\n";
    assert_eq!(
        lmtp_send(n2.lmtp_addr(), "bob@example.org", &[USER], msg),
        ""
    );
    let dir = n1.maildir(USER);
    let before = maildir_snapshot(&dir);

    // n1 resumes with the STORE and the APPEND waiting on its socket.
    kill_process(pid, Signal::CONT).expect("SIGCONT n1");
    std::io::Write::write_all(&mut stdin, b"read\n").expect("read");
    let mut answer = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut answer).expect("answer");
    let _ = py.wait();
    eprintln!("n1 answered {:?} after the stop", stopped.elapsed());
    let until = Instant::now() + TTL * 3;
    while metric(&n1, "tandem_cluster_fencing_events_total") < 1.0 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(metric(&n1, "tandem_cluster_fencing_events_total"), 1.0);
    eprintln!("n1 answered after SIGCONT: {answer}");
    for tag in ["a1", "a2"] {
        let ok = format!("{tag} OK");
        assert!(!answer.contains(&ok), "{tag} went through: {answer}");
        assert!(
            answer.contains(&format!("{tag} NO")) || answer.contains("* BYE"),
            "{tag}: {answer}"
        );
    }
    assert_eq!(
        maildir_snapshot(&dir),
        before,
        "n1 wrote to alice's Maildir after resuming"
    );
    let list = imap_subjects(n2.imap_addr(), USER, PASS);
    let subjects: Vec<&str> = list.iter().map(|(_, s)| s.as_str()).collect();
    assert_eq!(subjects, ["m1", "m2", "m3"], "{list:?}");
}
