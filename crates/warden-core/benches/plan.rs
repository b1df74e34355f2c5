//! Plan speed: the default layout, and 200 tenants with 5 sites each (fresh host, so every action is planned).

use criterion::{criterion_group, criterion_main, Criterion};
use warden_core::config::{load, TenantConfig};
use warden_core::observed::BastilleHost;
use warden_core::Layout;

fn layout(tenants: usize, sites: usize) -> Layout {
    let mut loaded = load(None, &|_| None, &vec![]).unwrap();
    loaded.config.tenants = (0..tenants)
        .map(|t| TenantConfig {
            name: format!("tenant{t}"),
            sites: (0..sites).map(|s| format!("site{s}")).collect(),
        })
        .collect();
    Layout::from_loaded(&loaded).unwrap()
}

fn bench(c: &mut Criterion) {
    let small = layout(0, 0);
    c.bench_function("plan/default", |b| {
        b.iter(|| warden_core::bastille_plan::plan(&small, &BastilleHost::default()))
    });
    let big = layout(200, 5);
    c.bench_function("plan/200x5", |b| {
        b.iter(|| warden_core::bastille_plan::plan(&big, &BastilleHost::default()))
    });
    c.bench_function("layout+plan/200x5", |b| {
        b.iter(|| {
            let l = layout(200, 5);
            warden_core::bastille_plan::plan(&l, &BastilleHost::default())
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
