//! `tandem account import FILE`: bulk provisioning with per-line errors and
//! progress on stderr.

use std::io::{BufRead, BufReader};

use locator::import::{Format, Importer, Options};
use tokio::time::{Duration, Instant};

use super::Ctx;
use crate::Failure;
use crate::cli::{ImportArgs, ImportFormat};

const PROGRESS_EVERY: Duration = Duration::from_secs(2);

pub async fn run(ctx: &Ctx, args: ImportArgs) -> Result<(), Failure> {
    let format = match args.format {
        ImportFormat::Passwd => Format::Passwd,
        ImportFormat::Jsonl => Format::JsonLines,
    };
    let reader: Box<dyn BufRead + Send> = if args.file.as_os_str() == "-" {
        Box::new(BufReader::new(std::io::stdin()))
    } else {
        let f = std::fs::File::open(&args.file)
            .map_err(|e| Failure::Io(format!("{}: {e}", args.file.display())))?;
        Box::new(BufReader::new(f))
    };
    let opts = Options {
        create_domains: args.create_domains,
        cluster: args.cluster,
    };
    let mut importer = Importer::new(ctx.dir.clone(), opts).await?;
    let started = Instant::now();
    let mut last_report = started;
    // Reading is blocking but local and line-sized; the directory calls
    // between lines are what take time.
    for (i, line) in reader.lines().enumerate() {
        let number = i + 1;
        let line =
            line.map_err(|e| Failure::Io(format!("{}: line {number}: {e}", args.file.display())))?;
        importer.line(number, &line, format).await;
        if last_report.elapsed() >= PROGRESS_EVERY {
            last_report = Instant::now();
            let r = &importer.report;
            eprintln!(
                "import: {number} lines, {} added, {} updated, {} unchanged, {} failed ({:.0} lines/s)",
                r.added,
                r.updated,
                r.unchanged,
                r.failed,
                number as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
    let r = importer.report;
    if ctx.json {
        crate::output::json(&r)?;
    } else {
        for e in &r.errors {
            println!("{}:{}: {}", args.file.display(), e.line, e.error);
        }
        println!(
            "{} added, {} updated, {} unchanged, {} failed",
            r.added, r.updated, r.unchanged, r.failed
        );
    }
    if r.failed > 0 {
        return Err(Failure::Partial(format!(
            "{} lines could not be imported",
            r.failed
        )));
    }
    Ok(())
}
