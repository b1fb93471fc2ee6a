use super::*;

/// Feeds `input` whole; the body, where DATA ended, the reader.
fn dot_whole(input: &[u8], max: u64, form: Form) -> (Vec<u8>, Option<usize>, DotReader) {
    let mut r = DotReader::new(max, form).with_max_line(20);
    let mut body = Vec::new();
    let end = match r.feed(input, &mut body) {
        Step::Done(n) => Some(n),
        Step::More => None,
    };
    (body, end, r)
}

/// The same, split at `at`: must give the same answer.
fn dot_split(input: &[u8], at: usize, max: u64, form: Form) -> (Vec<u8>, Option<usize>) {
    let mut r = DotReader::new(max, form).with_max_line(20);
    let mut body = Vec::new();
    match r.feed(&input[..at], &mut body) {
        Step::Done(n) => return (body, Some(n)),
        Step::More => {}
    }
    match r.feed(&input[at..], &mut body) {
        Step::Done(n) => (body, Some(at + n)),
        Step::More => (body, None),
    }
}

/// Input, LF-form body, where DATA ends (bytes consumed).
type Case<'a> = (&'a [u8], &'a [u8], Option<usize>);
/// The same, and what the strict reader found.
type StrictCase<'a> = (&'a [u8], &'a [u8], Option<usize>, Flaws);

#[test]
fn lf_form_table() {
    // The backend's reading: CRLF or bare LF end a line, LF comes out.
    let cases: &[Case<'_>] = &[
        (b".\r\n", b"", Some(3)),
        (b"a\r\nb\r\n.\r\nQUIT\r\n", b"a\nb\n", Some(9)),
        (b"..\r\n.\r\n", b".\n", Some(7)),
        (b"..x\r\n...\r\n.\r\n", b".x\n..\n", Some(13)),
        (b"\r\n\r\n.\r\n", b"\n\n", Some(7)),
        (b" .\r\n.\r\n", b" .\n", Some(7)),
        (b"a\rb\r\n.\r\n", b"a\rb\n", Some(8)),
        (b"\0\xff\r\n.\r\n", b"\0\xff\n", Some(7)),
        (b"a\nb\n.\n", b"a\nb\n", Some(6)),
        (b"a\r\r\n.\r\n", b"a\r\n", Some(7)),
        (b".\rx\r\n.\r\n", b"\rx\n", Some(8)),
        (b"no end\r\n", b"no end\n", None),
    ];
    for (input, want, end) in cases {
        let (body, got_end, r) = dot_whole(input, 1000, Form::Lf);
        assert_eq!((body.as_slice(), got_end), (*want, *end), "{input:?}");
        assert!(!r.over());
        assert_eq!(r.flaws(), Flaws::default(), "LF form reports nothing");
        for at in 0..=input.len() {
            let (body, got_end) = dot_split(input, at, 1000, Form::Lf);
            assert_eq!(
                (body.as_slice(), got_end),
                (*want, *end),
                "{input:?} at {at}"
            );
        }
    }
}

#[test]
fn crlf_form_table() {
    let f = |bare_lf, bare_cr, nul, long_line| Flaws {
        bare_lf,
        bare_cr,
        nul,
        long_line,
    };
    let clean = Flaws::default();
    let cases: &[StrictCase<'_>] = &[
        (b".\r\n", b"", Some(3), clean),
        (b"a\r\nb\r\n.\r\nQUIT\r\n", b"a\r\nb\r\n", Some(9), clean),
        (b"..\r\n.\r\n", b".\r\n", Some(7), clean),
        (b"..x\r\n...\r\n.\r\n", b".x\r\n..\r\n", Some(13), clean),
        (b"\r\n.\r\n", b"\r\n", Some(5), clean),
        // Smuggling: none of these ends the data; each is flagged.
        (
            b"a\n.\nMAIL",
            b"a\n.\nMAIL",
            None,
            f(true, false, false, false),
        ),
        (
            b"a\n.\r\nMAIL",
            b"a\n.\r\nMAIL",
            None,
            f(true, false, false, false),
        ),
        (
            b"a\r\n.\nMAIL",
            b"a\r\n\nMAIL",
            None,
            f(true, false, false, false),
        ),
        (
            b"a\r.\r\nMAIL",
            b"a\r.\r\nMAIL",
            None,
            f(false, true, false, false),
        ),
        (
            b"a\r\n.\r.\r\n",
            b"a\r\n\r.\r\n",
            None,
            f(false, true, false, false),
        ),
        (b"\n.\r\n", b"\n.\r\n", None, f(true, false, false, false)),
        // The same flaws in a message that does end.
        (
            b"a\nb\r\n.\r\n",
            b"a\nb\r\n",
            Some(8),
            f(true, false, false, false),
        ),
        (
            b"a\rb\r\n.\r\n",
            b"a\rb\r\n",
            Some(8),
            f(false, true, false, false),
        ),
        (
            b"a\r\r\n.\r\n",
            b"a\r\r\n",
            Some(7),
            f(false, true, false, false),
        ),
        (
            b"a\0b\r\n.\r\n",
            b"a\0b\r\n",
            Some(8),
            f(false, false, true, false),
        ),
        (
            b"0123456789012345678901\r\n.\r\n",
            b"0123456789012345678901\r\n",
            Some(27),
            f(false, false, false, true),
        ),
        (
            b"01234567890123456789\r\n.\r\n",
            b"01234567890123456789\r\n",
            Some(25),
            clean,
        ),
        (b"\xff\xfe\r\n.\r\n", b"\xff\xfe\r\n", Some(7), clean),
    ];
    for (input, want, end, flaws) in cases {
        let (body, got_end, r) = dot_whole(input, 1000, Form::Crlf);
        assert_eq!((body.as_slice(), got_end), (*want, *end), "{input:?}");
        assert_eq!(r.flaws(), *flaws, "{input:?}");
        for at in 0..=input.len() {
            let (body, got_end) = dot_split(input, at, 1000, Form::Crlf);
            assert_eq!(
                (body.as_slice(), got_end),
                (*want, *end),
                "{input:?} at {at}"
            );
        }
    }
}

#[test]
fn dot_size_limit_counts_crlf_and_keeps_reading() {
    for form in [Form::Lf, Form::Crlf] {
        // "12345678\r\n" is 10 bytes on the wire.
        let (body, end, r) = dot_whole(b"12345678\r\n.\r\n", 10, form);
        assert_eq!((end, r.over(), r.size()), (Some(13), false, 10));
        assert_eq!(body.len(), if form == Form::Lf { 9 } else { 10 });
        let (body, end, r) = dot_whole(b"12345678\r\n9\r\n.\r\nNOOP", 10, form);
        assert_eq!((end, r.over(), r.size()), (Some(16), true, 13));
        assert!(body.len() <= 10);
    }
}

fn chunks(parts: &[&[u8]], max: u64, form: Form) -> (Vec<u8>, bool, Flaws) {
    let mut c = Chunks::new(max, form).with_max_line(20);
    let mut body = Vec::new();
    for p in parts {
        if c.admit(p.len() as u64) {
            c.push(p, &mut body);
        }
    }
    c.finish(&mut body);
    (body, c.over(), c.flaws())
}

#[test]
fn chunks_convert_crlf_across_boundaries() {
    let cases: &[(&[&[u8]], &[u8])] = &[
        (&[b"a\r\nb\r\n"], b"a\nb\n"),
        (&[b"a\r", b"\nb"], b"a\nb"),
        (&[b"a\r", b"b\r\n"], b"a\rb\n"),
        (&[b"a\r", b"", b"\n"], b"a\n"),
        (&[b"a\r"], b"a\r"),
        (&[b".\r\n..\r\n"], b".\n..\n"),
        (&[b"a\nb\n"], b"a\nb\n"),
        (&[b"\r\r\n"], b"\r\n"),
        (&[b""], b""),
    ];
    for (parts, want) in cases {
        assert_eq!(chunks(parts, 100, Form::Lf).0, *want, "{parts:?}");
    }
    // Split at every point gives the same body, in both forms.
    let whole: &[u8] = b"H: v\r\n\r\nline\r\n.dot\r\n\r\r\nend";
    for form in [Form::Lf, Form::Crlf] {
        let want = chunks(&[whole], 100, form);
        for i in 0..=whole.len() {
            for j in i..=whole.len() {
                let got = chunks(&[&whole[..i], &whole[i..j], &whole[j..]], 100, form);
                assert_eq!(got, want, "split at {i},{j}");
            }
        }
    }
}

#[test]
fn crlf_chunks_are_kept_as_sent_and_checked() {
    let f = |bare_lf, bare_cr, nul, long_line| Flaws {
        bare_lf,
        bare_cr,
        nul,
        long_line,
    };
    let cases: &[(&[&[u8]], Flaws)] = &[
        (&[b"a\r\nb\r\n"], Flaws::default()),
        (&[b"a\r", b"\nb\r\n"], Flaws::default()),
        (&[b"a\n"], f(true, false, false, false)),
        (&[b"a\r", b"b"], f(false, true, false, false)),
        (&[b"a\r"], f(false, true, false, false)),
        (&[b"a\0\r\n"], f(false, false, true, false)),
        (
            &[b"0123456789", b"01234567890\r\n"],
            f(false, false, false, true),
        ),
        (&[b"0123456789", b"\r\n0123456789\r\n"], Flaws::default()),
    ];
    for (parts, flaws) in cases {
        let (body, over, got) = chunks(parts, 100, Form::Crlf);
        assert_eq!(body, parts.concat(), "{parts:?}");
        assert!(!over);
        assert_eq!(got, *flaws, "{parts:?}");
    }
}

#[test]
fn chunks_over_the_limit_keep_nothing_more() {
    let (body, over, _) = chunks(&[b"12345", b"67890", b"x"], 10, Form::Lf);
    assert!(over);
    assert_eq!(body, b"1234567890");
    let (_, over, _) = chunks(&[b"12345", b"67890"], 10, Form::Crlf);
    assert!(!over);
}

#[test]
fn never_panics_on_any_bytes() {
    for form in [Form::Lf, Form::Crlf] {
        for a in 0..=255u8 {
            for b in [0u8, b'\r', b'\n', b'.', b'x', 0xff] {
                let input = [b'\r', b'\n', b'.', a, b, b'\r', b'\n', a, b'.', b];
                let mut r = DotReader::new(5, form);
                let _ = r.feed(&input, &mut Vec::new());
                let mut c = Chunks::new(5, form);
                if c.admit(input.len() as u64) {
                    c.push(&input, &mut Vec::new());
                }
            }
        }
    }
}
