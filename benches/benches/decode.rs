//! Page decode into rows: schema-guided (`RowDecoder`) against `serde_json::Value`.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sync_benches::{item_schema, items_page};
use sync_core::record::decode::RowDecoder;

fn decode(c: &mut Criterion) {
    let page = items_page(1000);
    let decoder = RowDecoder::new(item_schema());
    let mut group = c.benchmark_group("page_decode");
    group.throughput(Throughput::Elements(1000));
    group.bench_with_input(BenchmarkId::new("row_decoder", 1000), &page, |b, page| {
        b.iter(|| {
            decoder
                .decode_page(page.as_bytes(), &["items"])
                .expect("page decodes")
                .rows
                .len()
        })
    });
    group.bench_with_input(
        BenchmarkId::new("serde_json_value", 1000),
        &page,
        |b, page| b.iter(|| serde_json_value_rows(page)),
    );
    group.finish();
}

fn serde_json_value_rows(page: &str) -> usize {
    let v: serde_json::Value = serde_json::from_str(page).expect("page parses");
    v["items"].as_array().map_or(0, Vec::len)
}

criterion_group!(benches, decode);
criterion_main!(benches);
