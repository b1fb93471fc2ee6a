use super::*;

fn names(n: usize, tag: &str) -> Vec<(String, String)> {
    (0..n)
        .map(|i| (format!("17000{i}.M1P1Q{i}.{tag},S=1,W=1"), String::new()))
        .collect()
}

#[test]
fn assign_expunge_reload() {
    let t = tempfile::tempdir().unwrap();
    let (mut l, how) = UidList::open(t.path()).unwrap();
    assert_eq!(how, Opened::Created);
    assert_eq!(l.assign(t.path(), &names(3, "a")).unwrap(), vec![1, 2, 3]);
    l.expunge(t.path(), &[2, 3]).unwrap();
    let (l2, how) = UidList::open(t.path()).unwrap();
    assert_eq!(how, Opened::Existing);
    assert_eq!(l2.uids.keys().copied().collect::<Vec<_>>(), vec![1]);
    assert_eq!(l2.next_uid, 4, "expunged UIDs are not reused");
    assert_eq!(l2.uid_validity, l.uid_validity);
    let mut l2 = l2.compacted(t.path()).unwrap();
    assert_eq!(l2.assign(t.path(), &names(1, "b")).unwrap(), vec![4]);
    let (l3, _) = UidList::open(t.path()).unwrap();
    assert_eq!(l3.next_uid, 5);
    assert_eq!(l3.uids.len(), 2);
}

#[test]
fn torn_tail_is_cut_and_uids_stay_unique() {
    let t = tempfile::tempdir().unwrap();
    let (mut l, _) = UidList::open(t.path()).unwrap();
    l.assign(t.path(), &names(2, "a")).unwrap();
    let p = t.path().join(FILE_NAME);
    let mut f = OpenOptions::new().append(true).open(&p).unwrap();
    f.write_all(b"3 1700.M1P1Q9.torn,S=").unwrap();
    drop(f);
    let (mut l2, _) = UidList::open(t.path()).unwrap();
    assert_eq!(l2.uids.len(), 2);
    assert_eq!(l2.assign(t.path(), &names(1, "c")).unwrap(), vec![3]);
    let (l3, _) = UidList::open(t.path()).unwrap();
    assert_eq!(
        l3.uids.get(&3).map(String::as_str),
        Some("170000.M1P1Q0.c,S=1,W=1")
    );
}

#[test]
fn two_sessions_agree_on_uids() {
    let t = tempfile::tempdir().unwrap();
    let (mut a, _) = UidList::open(t.path()).unwrap();
    let (mut b, _) = UidList::open(t.path()).unwrap();
    let n = names(3, "x");
    assert_eq!(a.assign(t.path(), &n[..2]).unwrap(), vec![1, 2]);
    // b has a stale view; it sees a's numbers instead of reusing them.
    assert_eq!(
        b.assign(t.path(), &[n[2].clone(), n[1].clone()]).unwrap(),
        vec![3, 2]
    );
    assert_eq!(b.next_uid, 4);
    assert_eq!(a.assign(t.path(), &names(1, "y")).unwrap(), vec![4]);
    let (c, _) = UidList::open(t.path()).unwrap();
    assert_eq!(c.uids.len(), 4);
    assert_eq!(c.next_uid, 5);
}

#[test]
fn broken_file_gets_new_validity() {
    let t = tempfile::tempdir().unwrap();
    fs::write(t.path().join(FILE_NAME), "garbage\n1 x\n").unwrap();
    let (l, how) = UidList::open(t.path()).unwrap();
    assert_eq!(how, Opened::Recreated);
    assert!(l.uids.is_empty());
    assert!(
        fs::read_dir(t.path()).unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .contains("broken"))
    );
}

#[test]
fn parse_rejects_nonsense() {
    for bad in [
        "",
        "T1 1 1\n",
        "T2 1 1 1\n",
        "T1 1 1 1\n0 x\n",
        "T1 1 1 1\n1 a/b\n",
        "T1 1 1 1\nx y\n",
        "T1 1 1 1\n1 a\n1 b\n",
        "T1 1 1 1\n1 a\nM1 x S\n",
        "T1 1 1 1\n1 a\nM1 0 S\n",
        "T1 1 1 1\n1 a\nM1 2 S:\n",
        "T1 1 1 1\n-1 x\n",
    ] {
        assert!(parse(bad.as_bytes()).is_err(), "{bad:?}");
    }
    let (l, torn) = parse(b"T1 7 1 1\n5 a\n-9\n").unwrap();
    assert!(!torn);
    assert_eq!(
        (l.uid_validity, l.next_uid),
        (7, 10),
        "an expunge record raises next uid"
    );
}

#[test]
fn old_format_opens_with_modseq_one() {
    let t = tempfile::tempdir().unwrap();
    fs::write(t.path().join(FILE_NAME), "T1 7 3 5\n1 a\n2 b\n3 c\n-3\n").unwrap();
    let (mut l, how) = UidList::open(t.path()).unwrap();
    assert_eq!(how, Opened::Existing);
    assert_eq!((l.uid_validity, l.next_uid, l.highest_modseq), (7, 4, 5));
    assert_eq!((l.modseq(1), l.modseq(2)), (1, 1));
    assert_eq!(l.recorded_info(1), None);
    assert_eq!(
        l.vanished_since(1),
        Vanished::Since(vec![]),
        "no modseq: never shown"
    );
    assert_eq!(
        l.touch(t.path(), &[(2, "S".into())], true).unwrap(),
        Some(6)
    );
    let (l2, _) = UidList::open(t.path()).unwrap();
    assert_eq!((l2.modseq(1), l2.modseq(2), l2.highest_modseq), (1, 6, 6));
    assert_eq!(l2.recorded_info(2), Some("S"));
}

#[test]
fn modseqs_grow_and_survive_reopen() {
    let t = tempfile::tempdir().unwrap();
    let (mut l, _) = UidList::open(t.path()).unwrap();
    assert_eq!(l.assign(t.path(), &names(3, "a")).unwrap(), vec![1, 2, 3]);
    assert_eq!((l.highest_modseq, l.modseq(1), l.modseq(3)), (2, 2, 2));
    assert_eq!(
        l.touch(t.path(), &[(2, "FS".into())], true).unwrap(),
        Some(3)
    );
    assert_eq!(
        l.touch(t.path(), &[(2, "FS".into())], false).unwrap(),
        None,
        "already recorded"
    );
    assert_eq!(l.touch(t.path(), &[(9, "S".into())], true).unwrap(), None);
    l.expunge(t.path(), &[1, 3]).unwrap();
    assert_eq!(l.highest_modseq, 4);
    let (r, _) = UidList::open(t.path()).unwrap();
    assert_eq!(r.highest_modseq, 4);
    assert_eq!(r.modseq(2), 3);
    assert_eq!(r.recorded_info(2), Some("FS"));
    assert_eq!(r.vanished_since(3), Vanished::Since(vec![1, 3]));
    assert_eq!(r.vanished_since(4), Vanished::Since(vec![]));
    r.compacted(t.path()).unwrap();
    let (r, _) = UidList::open(t.path()).unwrap();
    assert_eq!(
        r.vanished_since(0),
        Vanished::Since(vec![1, 3]),
        "a rewrite keeps expunges"
    );
    assert_eq!((r.highest_modseq, r.modseq(2)), (4, 3));
    // An empty info is a record too: the flags were all removed.
    let (mut r, _) = UidList::open(t.path()).unwrap();
    r.touch(t.path(), &[(2, String::new())], true).unwrap();
    let (r2, _) = UidList::open(t.path()).unwrap();
    assert_eq!((r2.recorded_info(2), r2.modseq(2)), (Some(""), 5));
}

#[test]
fn sessions_never_share_a_modseq() {
    let t = tempfile::tempdir().unwrap();
    let (mut a, _) = UidList::open(t.path()).unwrap();
    a.assign(t.path(), &names(2, "x")).unwrap();
    let (mut b, _) = UidList::open(t.path()).unwrap();
    assert_eq!(
        a.touch(t.path(), &[(1, "S".into())], true).unwrap(),
        Some(3)
    );
    // b read only the appended bytes and agrees.
    assert_eq!(
        b.touch(t.path(), &[(2, "S".into())], true).unwrap(),
        Some(4)
    );
    assert_eq!(b.modseq(1), 3);
    assert_eq!(
        b.touch(t.path(), &[(1, "S".into())], false).unwrap(),
        None,
        "a already recorded it"
    );
    // A rewrite by one is noticed by the other (new inode).
    let a = a.compacted(t.path()).unwrap();
    assert_eq!(a.highest_modseq, 4);
    b.expunge(t.path(), &[1]).unwrap();
    assert_eq!(b.highest_modseq, 5);
    let (c, _) = UidList::open(t.path()).unwrap();
    assert_eq!(c.vanished_since(4), Vanished::Since(vec![1]));
}

#[test]
fn compaction_keeps_what_vanished_needs() {
    let t = tempfile::tempdir().unwrap();
    let (mut l, _) = UidList::open(t.path()).unwrap();
    let n = VANISHED_KEEP + 50;
    let uids = l.assign(t.path(), &names(n, "v")).unwrap();
    l.expunge(t.path(), &uids[..50]).unwrap();
    let first = l.highest_modseq;
    l.expunge(t.path(), &uids[50..]).unwrap();
    let second = l.highest_modseq;
    // Mostly dead: the expunge rewrote the file, dropping the oldest.
    let text = fs::read_to_string(t.path().join(FILE_NAME)).unwrap();
    assert_eq!(
        text.lines().count(),
        1 + VANISHED_KEEP,
        "header and kept expunges"
    );
    assert!(text.starts_with(&format!(
        "T1 {} {} {second} {first}\n",
        l.uid_validity,
        n + 1
    )));
    let (r, _) = UidList::open(t.path()).unwrap();
    assert_eq!(r.vanished_since(first - 1), Vanished::TooOld);
    assert_eq!(
        r.vanished_since(first),
        Vanished::Since(uids[50..].to_vec())
    );
    assert_eq!(r.vanished_since(second), Vanished::Since(vec![]));
    assert_eq!(r.next_uid as usize, n + 1);
}
