//! THREAD=ORDEREDSUBJECT and THREAD=REFERENCES, RFC 5256 §3, and the
//! `thread-list` wire form of its §4.
//!
//! REFERENCES works on an arena of containers indexed by `usize` with a
//! HashMap from Message-ID, so it is O(n log n) in the usual case. Links that
//! would close a loop are refused (the References of hostile or broken mail
//! can say anything); a union-find over the links spares the ancestor walk
//! that proves it for containers that are not yet in one tree. Every walk
//! over the trees is iterative, so a deep conversation cannot exhaust the
//! stack, including when the result is dropped.

use std::collections::HashMap;

use super::subject::extract;

/// One message to thread.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ThreadInput {
    /// What to return for it: the sequence number or the UID.
    pub id: u32,
    /// The Message-ID, with or without angle brackets.
    pub message_id: Option<String>,
    /// The ids of References, oldest first, or when it has no valid id, that
    /// of In-Reply-To (RFC 5256 §3 step 1.B leaves that choice to the caller).
    pub references: Vec<String>,
    /// The Subject as decoded from the header. The base subject is taken here,
    /// since step 5 must also know whether it was a reply or forward; an
    /// already extracted base subject works too but loses that distinction.
    pub subject: String,
    /// The sent date (Date:, else INTERNALDATE), unix seconds.
    pub date: i64,
    /// Mailbox order: the tie breaker for equal dates and the order in which
    /// a duplicated Message-ID is given to its first holder.
    pub seq: u32,
}

/// The threading algorithms of RFC 5256.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    OrderedSubject,
    References,
}

/// A node of a thread tree; `id` is `None` for a dummy standing for a
/// message that is referenced but not in the result.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Thread {
    pub id: Option<u32>,
    pub children: Vec<Thread>,
}

impl Drop for Thread {
    // The derived drop recurses once per level; a crafted chain of thousands
    // of replies would overflow the stack of the session task.
    fn drop(&mut self) {
        let mut stack = std::mem::take(&mut self.children);
        while let Some(mut t) = stack.pop() {
            stack.append(&mut t.children);
        }
    }
}

/// Threads the messages (those that matched the search criteria).
pub fn thread(algorithm: Algorithm, msgs: Vec<ThreadInput>) -> Vec<Thread> {
    match algorithm {
        Algorithm::OrderedSubject => ordered_subject(msgs),
        Algorithm::References => references(msgs),
    }
}

/// Appends the threads in the RFC 5256 `thread-list` syntax, e.g.
/// `(1 2)(3 (4)(5))`: a single child continues its parent's list, several
/// children are each a nested list, a dummy contributes no number.
pub fn write_threads(out: &mut Vec<u8>, threads: &[Thread]) {
    enum Step<'a> {
        Text(&'static [u8]),
        /// A node starting or continuing a list; `bool` tells whether the
        /// list already has a member, so the next one needs a space.
        Members(&'a Thread, bool),
    }
    let mut stack: Vec<Step<'_>> = Vec::new();
    for t in threads.iter().rev() {
        if is_empty_dummy(t) {
            continue;
        }
        stack.extend([Step::Text(b")"), Step::Members(t, false), Step::Text(b"(")]);
    }
    while let Some(step) = stack.pop() {
        let (mut node, mut any) = match step {
            Step::Text(s) => {
                out.extend_from_slice(s);
                continue;
            }
            Step::Members(node, any) => (node, any),
        };
        loop {
            if let Some(id) = node.id {
                if any {
                    out.push(b' ');
                }
                out.extend_from_slice(id.to_string().as_bytes());
                any = true;
            }
            let live: Vec<&Thread> = node
                .children
                .iter()
                .filter(|c| !is_empty_dummy(c))
                .collect();
            match live.as_slice() {
                [] => break,
                [only] => node = only,
                many => {
                    if any {
                        out.push(b' ');
                    }
                    for child in many.iter().rev() {
                        stack.extend([
                            Step::Text(b")"),
                            Step::Members(child, false),
                            Step::Text(b"("),
                        ]);
                    }
                    break;
                }
            }
        }
    }
}

fn is_empty_dummy(t: &Thread) -> bool {
    t.id.is_none() && t.children.is_empty()
}

/// ORDEREDSUBJECT: one thread per base subject, its earliest message the
/// parent of all the others, threads in the order of their first message.
fn ordered_subject(msgs: Vec<ThreadInput>) -> Vec<Thread> {
    let mut keyed: Vec<(String, i64, u32, u32)> = msgs
        .into_iter()
        .map(|m| (extract(&m.subject).0, m.date, m.seq, m.id))
        .collect();
    keyed.sort();
    let mut threads: Vec<((i64, u32), Thread)> = Vec::new();
    let mut current: Option<&str> = None;
    for (subject, date, seq, id) in &keyed {
        match threads.last_mut() {
            Some((_, parent)) if current == Some(subject.as_str()) => {
                parent.children.push(Thread {
                    id: Some(*id),
                    children: Vec::new(),
                })
            }
            _ => {
                threads.push((
                    (*date, *seq),
                    Thread {
                        id: Some(*id),
                        children: Vec::new(),
                    },
                ));
                current = Some(subject);
            }
        }
    }
    threads.sort_by_key(|(key, _)| *key);
    threads.into_iter().map(|(_, t)| t).collect()
}

struct Msg {
    id: u32,
    date: i64,
    seq: u32,
    subject: String,
    is_reply: bool,
}

#[derive(Default)]
struct Node {
    msg: Option<Msg>,
    parent: Option<usize>,
    children: Vec<usize>,
}

/// The containers of REFERENCES step 1 and the sets of linked ones.
#[derive(Default)]
struct Arena {
    nodes: Vec<Node>,
    /// Union-find: containers ever linked share a set. Sets only grow while
    /// step 1.C may split trees, so "different sets" proves "no loop".
    set: Vec<usize>,
}

impl Arena {
    fn add(&mut self) -> usize {
        self.nodes.push(Node::default());
        self.set.push(self.set.len());
        self.nodes.len() - 1
    }

    fn find(&mut self, mut n: usize) -> usize {
        while self.set[n] != n {
            self.set[n] = self.set[self.set[n]];
            n = self.set[n];
        }
        n
    }

    /// Whether making `child` a child of `parent` would close a loop.
    fn would_loop(&mut self, parent: usize, child: usize) -> bool {
        if parent == child {
            return true;
        }
        if self.find(parent) != self.find(child) {
            return false;
        }
        let mut cur = parent;
        while let Some(up) = self.nodes[cur].parent {
            if up == child {
                return true;
            }
            cur = up;
        }
        false
    }

    fn link(&mut self, parent: usize, child: usize) {
        self.nodes[child].parent = Some(parent);
        self.nodes[parent].children.push(child);
        let (a, b) = (self.find(parent), self.find(child));
        self.set[a] = b;
    }

    fn unlink(&mut self, child: usize) {
        if let Some(parent) = self.nodes[child].parent.take() {
            self.nodes[parent].children.retain(|&c| c != child);
        }
    }

    /// The message a container stands for in sorting and subject grouping:
    /// its own, or a dummy's first child's.
    fn representative(&self, mut n: usize) -> Option<&Msg> {
        loop {
            match &self.nodes[n].msg {
                Some(m) => return Some(m),
                None => n = *self.nodes[n].children.first()?,
            }
        }
    }

    fn sort_key(&self, n: usize) -> (i64, u32) {
        self.representative(n)
            .map_or((i64::MAX, u32::MAX), |m| (m.date, m.seq))
    }

    /// Containers below `roots` with every child before its parent.
    fn post_order(&self, roots: &[usize]) -> Vec<usize> {
        let mut out = Vec::with_capacity(self.nodes.len());
        let mut stack: Vec<(usize, bool)> = roots.iter().map(|&r| (r, false)).collect();
        while let Some((n, expanded)) = stack.pop() {
            if expanded {
                out.push(n);
            } else {
                stack.push((n, true));
                stack.extend(self.nodes[n].children.iter().map(|&c| (c, false)));
            }
        }
        out
    }

    /// Step 6 (and 4): siblings by sent date, a dummy by its first child's.
    fn sort_all(&mut self, roots: &mut [usize]) {
        for n in self.post_order(roots) {
            let mut children = std::mem::take(&mut self.nodes[n].children);
            children.sort_by_key(|&c| self.sort_key(c));
            self.nodes[n].children = children;
        }
        roots.sort_by_key(|&r| self.sort_key(r));
    }

    fn is_dummy(&self, n: usize) -> bool {
        self.nodes[n].msg.is_none()
    }
}

/// Strips blanks and the angle brackets; `None` when nothing is left.
fn normalize_id(id: &str) -> Option<String> {
    let id = id.trim();
    let id = id.strip_prefix('<').unwrap_or(id);
    let id = id.strip_suffix('>').unwrap_or(id).trim();
    (!id.is_empty()).then(|| id.to_string())
}

fn references(mut msgs: Vec<ThreadInput>) -> Vec<Thread> {
    msgs.sort_by_key(|m| m.seq);
    let mut arena = Arena::default();
    let mut by_id: HashMap<String, usize> = HashMap::new();

    // Step 1: containers and links.
    for m in msgs {
        // 1.A: a duplicated Message-ID only counts for the first message.
        let this = match m.message_id.as_deref().and_then(normalize_id) {
            Some(id) => match by_id.get(&id) {
                Some(&n) if arena.is_dummy(n) => n,
                Some(_) => arena.add(),
                None => {
                    let n = arena.add();
                    by_id.insert(id, n);
                    n
                }
            },
            None => arena.add(),
        };
        let (subject, is_reply) = extract(&m.subject);
        arena.nodes[this].msg = Some(Msg {
            id: m.id,
            date: m.date,
            seq: m.seq,
            subject,
            is_reply,
        });
        // 1.B: chain the references, keeping links made before.
        let refs: Vec<usize> = m
            .references
            .iter()
            .filter_map(|r| normalize_id(r))
            .map(|id| *by_id.entry(id).or_insert_with(|| arena.add()))
            .filter(|&n| n != this)
            .collect();
        for pair in refs.windows(2) {
            let (parent, child) = (pair[0], pair[1]);
            if arena.nodes[child].parent.is_none() && !arena.would_loop(parent, child) {
                arena.link(parent, child);
            }
        }
        // 1.C: the message's own References are authoritative for its parent.
        let last = refs.last().copied();
        if arena.nodes[this].parent != last {
            arena.unlink(this);
            if let Some(parent) = last
                && !arena.would_loop(parent, this)
            {
                arena.link(parent, this);
            }
        }
    }

    // Step 2: the root set.
    let roots: Vec<usize> = (0..arena.nodes.len())
        .filter(|&n| arena.nodes[n].parent.is_none())
        .collect();

    // Step 3: prune dummies, children first.
    for n in arena.post_order(&roots) {
        let children = std::mem::take(&mut arena.nodes[n].children);
        let mut kept = Vec::with_capacity(children.len());
        for c in children {
            if arena.is_dummy(c) {
                // Already pruned below: an empty dummy vanishes, one with
                // children gives them to this level.
                kept.append(&mut arena.nodes[c].children);
            } else {
                kept.push(c);
            }
        }
        arena.nodes[n].children = kept;
    }
    let mut roots: Vec<usize> = roots
        .into_iter()
        .flat_map(|r| {
            let node = &arena.nodes[r];
            match (&node.msg, node.children.len()) {
                (Some(_), _) => vec![r],
                // A dummy root stays only to hold several children together.
                (None, 0) => vec![],
                (None, 1) => node.children.clone(),
                (None, _) => vec![r],
            }
        })
        .collect();

    // Step 4.
    arena.sort_all(&mut roots);

    // Step 5: gather roots with the same base subject.
    let subject_of = |arena: &Arena, r: usize| {
        arena
            .representative(r)
            .filter(|m| !m.subject.is_empty())
            .map(|m| (m.subject.clone(), m.is_reply))
    };
    let mut table: HashMap<String, usize> = HashMap::new();
    for &r in &roots {
        let Some((subject, reply)) = subject_of(&arena, r) else {
            continue;
        };
        let prefer = |t: usize| {
            let t_reply = arena.representative(t).is_some_and(|m| m.is_reply);
            if arena.is_dummy(t) {
                false
            } else {
                arena.is_dummy(r) || (t_reply && !reply)
            }
        };
        match table.get(&subject) {
            Some(&t) if !prefer(t) => {}
            _ => {
                table.insert(subject, r);
            }
        }
    }
    let mut merged_roots = Vec::with_capacity(roots.len());
    // Roots whose place a new dummy takes (5.C.iv), and roots merged away.
    let mut replaced: HashMap<usize, usize> = HashMap::new();
    let mut gone = vec![false; arena.nodes.len()];
    for &r in &roots {
        let Some((subject, reply)) = subject_of(&arena, r) else {
            continue;
        };
        let Some(&t) = table.get(&subject) else {
            continue;
        };
        if t == r {
            continue;
        }
        let t_reply = arena.representative(t).is_some_and(|m| m.is_reply);
        match (arena.is_dummy(t), arena.is_dummy(r)) {
            // i: both dummies, one keeps all children.
            (true, true) => {
                let mut moved = std::mem::take(&mut arena.nodes[r].children);
                arena.nodes[t].children.append(&mut moved);
            }
            // ii: the message joins its subject's dummy.
            (true, false) => arena.nodes[t].children.push(r),
            // iii: a reply goes under the original.
            (false, false) if !t_reply && reply => arena.nodes[t].children.push(r),
            // iv: siblings under a new dummy that takes the table's place.
            _ => {
                let d = arena.add();
                gone.push(false);
                arena.nodes[d].children = vec![t, r];
                table.insert(subject, d);
                // `t` is an original root: once replaced, the table names `d`.
                replaced.insert(t, d);
                gone[t] = true;
            }
        }
        gone[r] = true;
    }
    for &r in &roots {
        if let Some(&d) = replaced.get(&r) {
            merged_roots.push(d);
        } else if !gone[r] {
            merged_roots.push(r);
        }
    }

    // Step 6.
    arena.sort_all(&mut merged_roots);
    build(arena, &merged_roots)
}

/// Turns the arena below `roots` into owned trees, children first.
fn build(mut arena: Arena, roots: &[usize]) -> Vec<Thread> {
    let mut built: Vec<Option<Thread>> = Vec::new();
    built.resize_with(arena.nodes.len(), || None);
    for n in arena.post_order(roots) {
        let children = std::mem::take(&mut arena.nodes[n].children)
            .into_iter()
            .filter_map(|c| built[c].take())
            .collect();
        built[n] = Some(Thread {
            id: arena.nodes[n].msg.as_ref().map(|m| m.id),
            children,
        });
    }
    roots.iter().filter_map(|&r| built[r].take()).collect()
}
