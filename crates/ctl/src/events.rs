//! `droverctl events`: the newest events matching the filters, then (`--follow`) each new one
//! as it commits.

use std::time::Duration;

use comfy_table::Table;
use drover_client::{Client, outln};
use drover_types::Event;
use serde_json::Value;

use crate::cli::{EventsArgs, Output};
use crate::exit::Failure;
use crate::output::{Printer, event_row, table};
use crate::render;

/// Whether an event passes `droverctl events`' filters.
struct EventFilter {
    since_ms: Option<u64>,
    worker: Option<String>,
    kinds: Vec<String>,
}

impl EventFilter {
    fn matches(&self, e: &Event) -> bool {
        if self.since_ms.is_some_and(|t| e.at_ms < t) {
            return false;
        }
        let kind = serde_json::to_value(&e.kind).unwrap_or_default();
        let (name, fields) = match &kind {
            Value::Object(m) => match m.iter().next() {
                Some((name, fields)) => (name.as_str(), Some(fields)),
                None => ("", None),
            },
            Value::String(s) => (s.as_str(), None),
            _ => ("", None),
        };
        if !self.kinds.is_empty() && !self.kinds.iter().any(|k| k == name) {
            return false;
        }
        match &self.worker {
            None => true,
            Some(w) => fields.is_some_and(|f| {
                ["worker", "replaces", "leader"]
                    .iter()
                    .any(|k| f[*k].as_str() == Some(w))
                    || f["workers"]
                        .as_array()
                        .is_some_and(|ws| ws.iter().any(|x| x.as_str() == Some(w)))
            }),
        }
    }
}

/// `droverctl events`: the newest `--tail` matching events (or those after `--after`), with a
/// line on stderr when more remain, then with `--follow` every new one as it commits.
pub(crate) async fn events(c: &Client, out: Printer, args: EventsArgs) -> Result<(), Failure> {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let since_ms = match &args.since {
        Some(s) => Some(render::parse_since(s, now_ms).map_err(|message| Failure {
            message: format!("--since: {message}"),
            hint: None,
            exit: 2,
        })?),
        None => None,
    };
    let filter = EventFilter {
        since_ms,
        worker: args.worker.clone(),
        kinds: args.kind.clone(),
    };
    // What is shown first, and the sequence number to follow from.
    let mut shown: std::collections::VecDeque<Event> = std::collections::VecDeque::new();
    let mut left_out = 0usize;
    let mut more_after = false;
    let mut after = args.after.unwrap_or(0);
    match args.after {
        Some(_) => loop {
            let page = c.events(after, Some(1000)).await?;
            for e in page.events {
                after = e.seq;
                if !filter.matches(&e) {
                    continue;
                }
                if shown.len() == args.limit {
                    more_after = true;
                    break;
                }
                shown.push_back(e);
            }
            if more_after {
                // `after` is one past the last shown: continue from the last shown instead.
                after = shown.back().map_or(after, |e| e.seq);
                break;
            }
            after = page.next_after.max(after);
            if !page.more {
                break;
            }
        },
        None => {
            let tail = args.tail.unwrap_or(20);
            loop {
                let page = c.events(after, Some(1000)).await?;
                for e in page.events.into_iter().filter(|e| filter.matches(e)) {
                    shown.push_back(e);
                    if shown.len() > tail {
                        shown.pop_front();
                        left_out += 1;
                    }
                }
                after = page.next_after.max(after);
                if !page.more {
                    break;
                }
            }
        }
    }
    let shown: Vec<Event> = shown.into();
    {
        match (out.0, args.follow) {
            // Following: one line (or JSON object) per event, from the first.
            (_, true) => {
                for e in &shown {
                    out.event_line(e)?;
                }
            }
            (Output::Json | Output::Yaml, false) => {
                let page = serde_json::json!({
                    "events": shown,
                    "more": more_after || left_out > 0,
                    "next_after": after,
                });
                out.emit(&page, Table::new);
            }
            (Output::Table | Output::Wide, false) => {
                let wide = out.0 == Output::Wide;
                let mut header = vec!["SEQ", "TIME", "EVENT", "DETAILS"];
                if wide {
                    header.insert(1, "VERSION");
                }
                let mut t = table(&header);
                for e in &shown {
                    t.add_row(event_row(e, wide));
                }
                outln!("{t}");
            }
        }
    }
    if left_out > 0 {
        eprintln!(
            "({left_out} earlier matching events not shown: --tail N shows more, --after SEQ \
             pages from a sequence number)"
        );
    } else if more_after {
        eprintln!("(more events remain: --after {after} continues)");
    }
    if !args.follow {
        return Ok(());
    }
    loop {
        let page = tokio::select! {
            p = c.events(after, Some(1000)) => p?,
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        for e in page.events.iter().filter(|e| filter.matches(e)) {
            out.event_line(e)?;
        }
        after = page.next_after.max(after);
        if !page.more {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                _ = tokio::signal::ctrl_c() => return Ok(()),
            }
        }
    }
}
