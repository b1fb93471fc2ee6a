//! Pieces of the benchmarks in `src/bin/`: an IMAP client, a generator of
//! realistic Maildirs, and process-tree memory from `/proc`.

pub mod corpus;
pub mod imap;
pub mod procmem;
