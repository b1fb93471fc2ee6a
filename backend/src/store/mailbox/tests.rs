use super::*;

#[test]
fn sync_assigns_in_delivery_order_and_sees_outside_changes() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    maildir::create(dir).unwrap();
    // Written by other software, out of order, one already in cur/ with flags.
    fs::write(dir.join("new/1700000002.M5P1.other"), "b\n").unwrap();
    fs::write(dir.join("cur/1700000001.M999999P1.other:2,S"), "a\n").unwrap();
    fs::write(dir.join("new/1700000002.M10P1.other"), "c\n").unwrap();
    let mut mb = Mailbox::open(dir).unwrap();
    let order: Vec<(u32, &str)> = mb
        .messages()
        .iter()
        .map(|m| (m.uid, m.base.as_str()))
        .collect();
    assert_eq!(
        order,
        vec![
            (1, "1700000001.M999999P1.other"),
            (2, "1700000002.M5P1.other"),
            (3, "1700000002.M10P1.other")
        ]
    );
    assert!(mb.get(1).unwrap().flags().seen);
    assert_eq!(
        mb.get(2).unwrap().size,
        2,
        "size from stat when the name lacks S="
    );

    maildir::deliver(dir, b"d\n", None).unwrap();
    fs::rename(
        dir.join("new/1700000002.M5P1.other"),
        dir.join("cur/1700000002.M5P1.other:2,FS"),
    )
    .unwrap();
    fs::remove_file(dir.join("new/1700000002.M10P1.other")).unwrap();
    let c = mb.sync().unwrap();
    assert_eq!((c.added, c.expunged, c.flags), (vec![4], vec![3], vec![2]));
    assert!(
        mb.sync().unwrap().is_empty(),
        "nothing changed, nothing to do"
    );

    let validity = mb.uid_validity();
    drop(mb);
    let mb = Mailbox::open(dir).unwrap();
    assert_eq!(mb.uid_validity(), validity);
    assert_eq!(
        mb.messages().iter().map(|m| m.uid).collect::<Vec<_>>(),
        vec![1, 2, 4]
    );
    assert_eq!(mb.next_uid(), 5);
}

#[test]
fn flags_mark_old_and_expunge() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    maildir::create(dir).unwrap();
    for b in [b"one\n".as_slice(), b"two\n", b"three\n"] {
        maildir::deliver(dir, b, None).unwrap();
    }
    let mut mb = Mailbox::open(dir).unwrap();
    assert!(mb.messages().iter().all(|m| m.in_new));
    mb.mark_old().unwrap();
    assert!(mb.messages().iter().all(|m| !m.in_new));
    assert_eq!(fs::read_dir(dir.join("cur")).unwrap().count(), 3);
    assert!(mb.set_info(2, "RS").unwrap());
    assert_eq!(mb.read(2).unwrap(), b"two\n");
    assert_eq!(mb.vsize(3).unwrap(), 7);
    assert_eq!(mb.expunge(&[1, 3]).unwrap(), vec![1, 3]);
    assert_eq!(mb.total_size(), 4);
    let mut mb = Mailbox::open(dir).unwrap();
    assert_eq!(mb.messages().len(), 1);
    assert!(mb.get(2).unwrap().flags().replied);
    maildir::deliver(dir, b"four\n", None).unwrap();
    assert_eq!(
        mb.sync().unwrap().added,
        vec![4],
        "UIDs of expunged messages are never reused"
    );
}

#[test]
fn modseqs_follow_flag_changes_from_anyone() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    maildir::create(dir).unwrap();
    for b in [b"one\n".as_slice(), b"two\n"] {
        maildir::deliver(dir, b, None).unwrap();
    }
    let mut mb = Mailbox::open(dir).unwrap();
    mb.mark_old().unwrap();
    let start = mb.highest_modseq();
    assert_eq!(mb.get(1).unwrap().modseq, start);
    assert!(mb.set_info(1, "S").unwrap());
    assert_eq!(mb.get(1).unwrap().modseq, start + 1);
    assert_eq!(mb.highest_modseq(), start + 1);
    mb.stage_info(1, "FS").unwrap();
    mb.stage_info(2, "S").unwrap();
    mb.commit_modseqs().unwrap();
    let m = start + 2;
    assert_eq!(
        (mb.get(1).unwrap().modseq, mb.get(2).unwrap().modseq),
        (m, m)
    );
    // Another program renames a file while Tandem runs...
    let p2 = mb.path(mb.get(2).unwrap());
    fs::rename(&p2, p2.to_string_lossy().replace(":2,S", ":2,RS")).unwrap();
    assert_eq!(mb.sync().unwrap().flags, vec![2]);
    assert_eq!(mb.get(2).unwrap().modseq, m + 1);
    // ...and while it does not.
    drop(mb);
    let p1 = dir.join("cur").join(format!(
        "{}:2,FS",
        Mailbox::open(dir).unwrap().get(1).unwrap().base
    ));
    fs::rename(&p1, p1.to_string_lossy().replace(":2,FS", ":2,F")).unwrap();
    let mut mb = Mailbox::open(dir).unwrap();
    assert_eq!(mb.get(1).unwrap().modseq, m + 2, "noticed at open");
    assert_eq!(mb.highest_modseq(), m + 2);
    let other = Mailbox::open(dir).unwrap();
    assert_eq!(
        other.get(1).unwrap().modseq,
        m + 2,
        "recorded once, not again"
    );
    mb.expunge(&[2]).unwrap();
    assert_eq!(mb.vanished_since(m + 2), Some(vec![2]));
    assert_eq!(Mailbox::open(dir).unwrap().highest_modseq(), m + 3);
}
