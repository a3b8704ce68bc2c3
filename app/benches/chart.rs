//! Drawing a chart: the SVG of a 1,000-point series, as the device page redraws it on every
//! new reading. `cargo bench -p app --bench chart` (scripts/bench.sh runs it). The same code runs
//! in the browser as wasm; `scripts/bench-dashboard.sh` measures it there.

use app::chart::{render_chart, ChartSpec};
use app::time::Zone;
use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;

fn chart(c: &mut Criterion) {
    let start = 1_763_815_845_000_i64;
    let points: Vec<(i64, f64)> = (0..1000)
        .map(|i| (start + i * 1000, 20.0 + 5.0 * (i as f64 / 50.0).sin()))
        .collect();
    c.bench_function("render_chart/1000_points", |b| {
        b.iter(|| {
            render_chart(ChartSpec {
                title: "temp",
                unit: Some("°C"),
                lines: vec![black_box(points.as_slice())],
                window: None,
                zone: Zone::Utc,
                thresholds: &[25.0],
                width: app::chart::CHART_WIDTH,
            })
        })
    });
}

criterion_group!(benches, chart);
criterion_main!(benches);
