//! Table tests of the IMAP command reader: each case fed whole, byte by byte,
//! and split at every point; plus limits, nesting and random input.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use imap_codec::imap_types::{
    auth::AuthenticateData,
    command::CommandBody,
    core::{IString, Literal, NString, Vec1},
    extensions::binary::LiteralOrLiteral8,
    fetch::MessageDataItem,
    response::{Data, Greeting, GreetingKind, Response, Status},
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::codec::{CONTINUE_LITERAL, CommandReader, Next, NextAuth, NextIdle, parse_command};
use super::frame::{Limits, literal_announcement};
use super::{encode_greeting, encode_response};

/// Hands out one chunk per read and records what is written.
#[derive(Default)]
struct Stream {
    chunks: VecDeque<Vec<u8>>,
    written: Vec<u8>,
}

impl Stream {
    fn new(chunks: Vec<Vec<u8>>) -> Self {
        Self {
            chunks: chunks.into(),
            written: Vec::new(),
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Some(mut chunk) = self.chunks.pop_front() {
            let n = chunk.len().min(buf.remaining());
            buf.put_slice(&chunk[..n]);
            if n < chunk.len() {
                self.chunks.push_front(chunk.split_off(n));
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.written.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Small limits, so that over-limit cases stay small enough to split.
const SMALL: Limits = Limits {
    max_line: 64,
    max_literal: 16,
    max_append_literal: 32,
    max_command: 128,
};

fn summary(next: &Next) -> String {
    match next {
        Next::Command(c) => format!("{} {}", c.tag.as_ref(), c.body.name()),
        Next::Bad { tag, .. } => format!("BAD {}", tag.as_deref().unwrap_or("*")),
        Next::TooBig { tag } => format!("TOOBIG {}", tag.as_deref().unwrap_or("*")),
        Next::Eof => "EOF".to_owned(),
    }
}

/// Reads every command up to EOF: their summaries and the continuation
/// requests written.
async fn read_all(limits: Limits, chunks: Vec<Vec<u8>>) -> (Vec<String>, usize) {
    let mut stream = Stream::new(chunks);
    let mut reader = CommandReader::new(limits);
    let mut out = Vec::new();
    loop {
        let next = reader
            .next(&mut stream)
            .await
            .expect("mock stream never fails");
        out.push(summary(&next));
        if next == Next::Eof {
            break;
        }
        assert!(out.len() < 10_000, "reader does not progress");
    }
    let continuations = stream.written.len() / CONTINUE_LITERAL.len();
    assert_eq!(stream.written, CONTINUE_LITERAL.repeat(continuations));
    (out, continuations)
}

/// Feeds `input` whole, byte by byte and split in two at every point.
async fn check(limits: Limits, input: &[u8], expected: &[&str], continuations: usize) {
    let mut expected: Vec<String> = expected.iter().map(|s| (*s).to_owned()).collect();
    expected.push("EOF".to_owned());
    let mut feeds = vec![
        vec![input.to_vec()],
        input.iter().map(|&b| vec![b]).collect::<Vec<_>>(),
    ];
    for i in 1..input.len() {
        feeds.push(vec![input[..i].to_vec(), input[i..].to_vec()]);
    }
    for feed in feeds {
        let shape: Vec<usize> = feed.iter().map(Vec::len).collect();
        let (got, sent) = read_all(limits, feed).await;
        let input = String::from_utf8_lossy(input);
        assert_eq!(got, expected, "input {input:?} fed as {shape:?}");
        assert_eq!(
            sent, continuations,
            "continuations for {input:?} fed as {shape:?}"
        );
    }
}

#[tokio::test]
async fn imap_reader_table() {
    let long = "x".repeat(100);
    let cases: Vec<(Vec<u8>, Vec<&str>, usize)> = vec![
        (b"a NOOP\r\n".to_vec(), vec!["a NOOP"], 0),
        (
            b"a NOOP\r\nb CAPABILITY\r\nc LOGOUT\r\n".to_vec(),
            vec!["a NOOP", "b CAPABILITY", "c LOGOUT"],
            0,
        ),
        (
            b"a LOGIN {5}\r\nalice {6}\r\nsecret\r\n".to_vec(),
            vec!["a LOGIN"],
            2,
        ),
        (
            b"a LOGIN {5+}\r\nalice {6+}\r\nsecret\r\n".to_vec(),
            vec!["a LOGIN"],
            0,
        ),
        (
            b"a LOGIN {5}\r\nalice {6+}\r\nsecret\r\nb NOOP\r\n".to_vec(),
            vec!["a LOGIN", "b NOOP"],
            1,
        ),
        (
            b"a APPEND INBOX (\\Seen) {21}\r\nSubject: x\r\n\r\nhello\r\n\r\nb NOOP\r\n".to_vec(),
            vec!["a APPEND", "b NOOP"],
            1,
        ),
        // Garbage gets BAD and the next command still parses.
        (b"xyz\r\na NOOP\r\n".to_vec(), vec!["BAD xyz", "a NOOP"], 0),
        (b"(x\r\na NOOP\r\n".to_vec(), vec!["BAD *", "a NOOP"], 0),
        (
            b"a FROB x\r\nb NOOP\r\n".to_vec(),
            vec!["BAD a", "b NOOP"],
            0,
        ),
        (b"\r\nb NOOP\r\n".to_vec(), vec!["BAD *", "b NOOP"], 0),
        (b"a NOOP\nb NOOP\r\n".to_vec(), vec!["BAD a", "b NOOP"], 0),
        (
            b"a LOGIN \"alice pw\r\nb NOOP\r\n".to_vec(),
            vec!["BAD a", "b NOOP"],
            0,
        ),
        // NUL bytes, in a line and in a literal.
        (
            b"a LOGIN al\0ice pw\r\nb NOOP\r\n".to_vec(),
            vec!["BAD a", "b NOOP"],
            0,
        ),
        (
            b"a LOGIN {3+}\r\na\0b pw\r\nb NOOP\r\n".to_vec(),
            vec!["BAD a", "b NOOP"],
            0,
        ),
        // A synchronising literal over the limit is refused unread.
        (
            b"a LOGIN {17}\r\nb NOOP\r\n".to_vec(),
            vec!["TOOBIG a", "b NOOP"],
            0,
        ),
        (
            b"a LOGIN {99999999999999999999}\r\nb NOOP\r\n".to_vec(),
            vec!["TOOBIG a", "b NOOP"],
            0,
        ),
        // Past 20 digits it is no literal (nor a valid command).
        (
            b"a LOGIN {999999999999999999999}\r\nb NOOP\r\n".to_vec(),
            vec!["BAD a", "b NOOP"],
            0,
        ),
        // APPEND has its own limit: 21 bytes pass, 33 do not.
        (
            b"a APPEND INBOX {33}\r\nb NOOP\r\n".to_vec(),
            vec!["TOOBIG a", "b NOOP"],
            0,
        ),
        // A non-synchronising one is read and discarded, with its command.
        (
            b"a LOGIN {17+}\r\n01234567890123456 {2+}\r\npw\r\nb NOOP\r\n".to_vec(),
            vec!["TOOBIG a", "b NOOP"],
            0,
        ),
        // ... up to a synchronising literal the client would wait on.
        (
            b"a LOGIN {17+}\r\n01234567890123456 {2}\r\nb NOOP\r\n".to_vec(),
            vec!["TOOBIG a", "b NOOP"],
            0,
        ),
        // The whole command is bounded too.
        (
            format!(
                "a LOGIN {{16}}\r\n{} {{16}}\r\n{}\r\nb NOOP\r\n",
                "y".repeat(16),
                "z".repeat(16)
            )
            .into_bytes(),
            vec!["a LOGIN", "b NOOP"],
            2,
        ),
        // A line over the limit, alone or ending in a literal.
        (
            format!("a NOOP {long}\r\nb NOOP\r\n").into_bytes(),
            vec!["BAD a", "b NOOP"],
            0,
        ),
        (
            format!("a LOGIN {long} {{5+}}\r\nhello\r\nb NOOP\r\n").into_bytes(),
            vec!["BAD a", "b NOOP"],
            0,
        ),
        (
            format!("a LOGIN {long} {{5}}\r\nb NOOP\r\n").into_bytes(),
            vec!["BAD a", "b NOOP"],
            0,
        ),
        (
            format!("({long}{long}\r\nb NOOP\r\n").into_bytes(),
            vec!["BAD *", "b NOOP"],
            0,
        ),
        // EOF mid-command.
        (b"a NOOP\r\nb NOO".to_vec(), vec!["a NOOP"], 0),
        (b"a LOGIN {5}\r\nali".to_vec(), vec![], 1),
    ];
    for (input, expected, continuations) in cases {
        check(SMALL, &input, &expected, continuations).await;
    }
}

#[tokio::test]
async fn imap_reader_append_keeps_message_bytes() {
    let message = b"Subject: x\r\n\r\nhello\r\n";
    let input = [
        b"a APPEND INBOX (\\Seen) {21}\r\n".as_slice(),
        message,
        b"\r\n",
    ]
    .concat();
    let mut stream = Stream::new(input.iter().map(|&b| vec![b]).collect());
    let mut reader = CommandReader::default();
    let Next::Command(command) = reader.next(&mut stream).await.expect("read") else {
        panic!("APPEND does not parse");
    };
    let CommandBody::Append {
        message: LiteralOrLiteral8::Literal(literal),
        ..
    } = command.body
    else {
        panic!("not an APPEND with a literal: {command:?}");
    };
    assert_eq!(literal.data(), message);
    assert_eq!(stream.written, CONTINUE_LITERAL);
}

#[tokio::test]
async fn imap_reader_default_limits() {
    let ok = format!("a LOGIN {{{}}}\r\n", 64 * 1024);
    let (got, sent) = read_all(Limits::default(), vec![ok.into_bytes()]).await;
    assert_eq!((got, sent), (vec!["EOF".to_owned()], 1));
    let big = format!("a LOGIN {{{}}}\r\nb NOOP\r\n", 64 * 1024 + 1);
    let (got, sent) = read_all(Limits::default(), vec![big.into_bytes()]).await;
    assert_eq!(
        (got, sent),
        (
            vec!["TOOBIG a".to_owned(), "b NOOP".to_owned(), "EOF".to_owned()],
            0
        )
    );
    let append = format!("a APPEND INBOX {{{}}}\r\n", 64 * 1024 * 1024);
    let (_, sent) = read_all(Limits::default(), vec![append.into_bytes()]).await;
    assert_eq!(sent, 1);
}

#[tokio::test]
async fn imap_reader_deep_nesting_is_bad() {
    let open = "(".repeat(1000);
    let close = ")".repeat(1000);
    let inputs = [
        format!("a SEARCH {open}ALL{close}\r\nb NOOP\r\n"),
        format!("a UID SEARCH {open}ALL{close}\r\nb NOOP\r\n"),
        format!("a FETCH 1 {open}FLAGS{close}\r\nb NOOP\r\n"),
        format!("a LIST {open}SUBSCRIBED{close} \"\" *\r\nb NOOP\r\n"),
        format!("a STORE 1 +FLAGS {open}\\Seen{close}\r\nb NOOP\r\n"),
        format!("a APPEND INBOX {open}\\Seen{close} {{1}}\r\nx\r\nb NOOP\r\n"),
        format!("a SETMETADATA INBOX {open}/private/x NIL{close}\r\nb NOOP\r\n"),
        format!("a SORT {open}DATE{close} UTF-8 ALL\r\nb NOOP\r\n"),
    ];
    for input in inputs {
        let (got, _) = read_all(Limits::default(), vec![input.clone().into_bytes()]).await;
        assert_eq!(got, ["BAD a", "b NOOP", "EOF"], "{}", &input[..30]);
    }
    // A reasonable depth still parses.
    let nested = format!("a SEARCH {}ALL{}\r\n", "(".repeat(5), ")".repeat(5));
    let (got, _) = read_all(Limits::default(), vec![nested.into_bytes()]).await;
    assert_eq!(got, ["a SEARCH", "EOF"]);
}

#[tokio::test]
async fn imap_reader_clear_drops_pipelined_plaintext() {
    let mut stream = Stream::new(vec![b"a STARTTLS\r\nb LOGIN x y\r\n".to_vec()]);
    let mut reader = CommandReader::default();
    let next = reader.next(&mut stream).await.expect("read");
    assert_eq!(summary(&next), "a STARTTLS");
    assert!(reader.has_buffered());
    reader.clear();
    assert!(!reader.has_buffered());
    assert_eq!(reader.next(&mut stream).await.expect("read"), Next::Eof);
}

#[tokio::test]
async fn imap_reader_authenticate_and_idle_lines() {
    let long = "A".repeat(100);
    let input = format!(
        "a AUTHENTICATE PLAIN\r\ndGVzdA==\r\n*\r\n!!\r\n{long}\r\nAA==\r\nDONE\r\nnope\r\n"
    );
    let mut stream = Stream::new(input.bytes().map(|b| vec![b]).collect());
    let mut reader = CommandReader::new(SMALL);
    let next = reader.next(&mut stream).await.expect("read");
    assert_eq!(summary(&next), "a AUTHENTICATE");
    let mut auth = Vec::new();
    for _ in 0..5 {
        auth.push(reader.next_authenticate(&mut stream).await.expect("read"));
    }
    assert_eq!(
        auth,
        [
            NextAuth::Data(AuthenticateData::r#continue(b"test".to_vec())),
            NextAuth::Data(AuthenticateData::Cancel),
            NextAuth::Bad,
            NextAuth::Bad,
            NextAuth::Data(AuthenticateData::r#continue(vec![0])),
        ]
    );
    assert_eq!(
        reader.next_idle_done(&mut stream).await.expect("read"),
        NextIdle::Done
    );
    assert_eq!(
        reader.next_idle_done(&mut stream).await.expect("read"),
        NextIdle::Bad
    );
    assert_eq!(
        reader.next_idle_done(&mut stream).await.expect("read"),
        NextIdle::Eof
    );
    assert_eq!(
        reader.next_authenticate(&mut stream).await.expect("read"),
        NextAuth::Eof
    );
}

#[test]
fn imap_literal_announcements() {
    type Case = (&'static [u8], Option<(u64, bool)>);
    let cases: [Case; 9] = [
        (b"a LOGIN {5}\r\n", Some((5, true))),
        (b"a LOGIN {5+}\r\n", Some((5, false))),
        (b"a APPEND x ~{5}\r\n", Some((5, true))),
        (b"{0}\n", Some((0, true))),
        (b"a LOGIN {}\r\n", None),
        (b"a LOGIN {+}\r\n", None),
        (b"a LOGIN 5}\r\n", None),
        (b"a LOGIN {5}x\r\n", None),
        (b"{99999999999999999999}\r\n", Some((u64::MAX, true))),
    ];
    for (line, expected) in cases {
        assert_eq!(
            literal_announcement(line),
            expected,
            "{}",
            String::from_utf8_lossy(line)
        );
    }
}

#[test]
fn imap_encode_responses() {
    let mut out = Vec::new();
    let greeting = Greeting::new(GreetingKind::Ok, None, "Tandem ready").expect("valid");
    encode_greeting(&mut out, &greeting);
    let done = Status::ok(Some("a".try_into().expect("tag")), None, "done").expect("valid");
    encode_response(&mut out, &Response::Status(done));
    let body = Literal::try_from(b"hello".as_slice()).expect("literal");
    let fetch = Data::Fetch {
        seq: 1.try_into().expect("non-zero"),
        items: Vec1::from(MessageDataItem::Rfc822(NString(Some(IString::Literal(
            body,
        ))))),
    };
    encode_response(&mut out, &Response::Data(fetch));
    assert_eq!(
        String::from_utf8_lossy(&out),
        "* OK Tandem ready\r\na OK done\r\n* 1 FETCH (RFC822 {5}\r\nhello)\r\n"
    );
}

/// xorshift64*: deterministic random bytes without a dependency.
fn random(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

#[tokio::test]
async fn imap_reader_never_panics_on_random_input() {
    const PIECES: [&[u8]; 16] = [
        b"a ",
        b"UID ",
        b"FETCH ",
        b"SEARCH ",
        b"(",
        b")",
        b"{3}\r\n",
        b"{2+}\r\n",
        b"\r\n",
        b"\"",
        b"\\",
        b"1:*",
        b" ",
        b"\0",
        b"~{1}\r\n",
        b"APPEND INBOX ",
    ];
    let mut seed = 0x5eed_u64;
    for _ in 0..3000 {
        let mut input = Vec::new();
        for _ in 0..random(&mut seed) % 40 {
            if random(&mut seed).is_multiple_of(2) {
                input.extend_from_slice(PIECES[(random(&mut seed) % 16) as usize]);
            } else {
                input.push(random(&mut seed) as u8);
            }
        }
        let _ = parse_command(&input);
        let cut = (random(&mut seed) as usize) % (input.len() + 1);
        let (got, _) = read_all(SMALL, vec![input[..cut].to_vec(), input[cut..].to_vec()]).await;
        assert_eq!(got.last().map(String::as_str), Some("EOF"));
    }
}

#[test]
fn list_patterns_parse() {
    for line in [
        &b"a LIST \"\" Jobs*\r\n"[..],
        b"a LIST \"\" \"Jobs*\"\r\n",
        b"a LIST \"\" *\r\n",
        b"a LIST \"\" %\r\n",
    ] {
        let next = super::codec::parse_command(line);
        assert!(
            matches!(next, super::Next::Command(_)),
            "{:?}: {next:?}",
            String::from_utf8_lossy(line)
        );
    }
}

#[test]
fn imap_settings_take_sizes_with_units() {
    let cfg: super::ImapConfig =
        serde_saphyr::from_str("max_message_size: 64M\nidle_timeout: 30m\n").unwrap();
    assert_eq!(cfg.max_message_size, 64 << 20);
    let cfg: super::ImapConfig = serde_saphyr::from_str("max_message_size: 2048\n").unwrap();
    assert_eq!(cfg.max_message_size, 2048);
    assert!(serde_saphyr::from_str::<super::ImapConfig>("max_size: 1\n").is_err());
}
