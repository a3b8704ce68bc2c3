//! Line parsing, the first step of every reading: one line of each dialect, and a registration.
//! `cargo bench -p server --bench parse` (scripts/bench.sh runs it).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use server::protocol::{parse_line, ParseRules};
use std::hint::black_box;

fn dialects(c: &mut Criterion) {
    let rules = ParseRules {
        csv_fields: ["counter".into(), "temp".into()].into(),
        max_fields: 64,
    };
    let lines = [
        ("csv", "7,42,23.5"),
        ("key_value", "id=7,counter=42,temp=23.5,hum=40.25"),
        (
            "json",
            r#"{"id":"7","counter":42,"temp":23.5,"hum":40.25,"ts":1763815845123}"#,
        ),
        (
            "registration",
            r#"{"id":"7","register":{"name":"Kitchen","fields":[{"name":"counter"},{"name":"temp","unit":"°C"}],"commands":[{"name":"LED","min":0,"max":1}]}}"#,
        ),
    ];
    let mut group = c.benchmark_group("parse_line");
    group.throughput(Throughput::Elements(1));
    for (name, line) in lines {
        // Every benchmarked line must parse: a benchmark of the error path would flatter.
        assert!(parse_line(line, &rules).is_ok(), "{name}");
        group.bench_function(name, |b| b.iter(|| parse_line(black_box(line), &rules)));
    }
    group.finish();
}

criterion_group!(benches, dialects);
criterion_main!(benches);
