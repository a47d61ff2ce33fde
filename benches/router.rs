//! Router throughput: messages per second through matcher evaluation and fan-out into
//! bounded queues, with 1 and with 10 subscribed outputs (each with its own matcher).
//! Queues are drained on the same thread after each batch, so this measures the router's
//! own cost (matching + Arc fan-out + one lock per batch per subscriber).

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use hekate::buffer::Queue;
use hekate::config::FullAction;
use hekate::matcher::Matcher;
use hekate::message::{Field, Message, Pack};
use hekate::pipeline::router::{Router, Subscriber};
use hekate::plugin::shutdown;
use hekate::stats::PluginStats;

const BATCH: usize = 512;

fn batch() -> Vec<Pack> {
    (0..BATCH)
        .map(|i| {
            let mut m = Message::new();
            m.msg_type = format!("app.type{}", i % 10).into();
            m.logger = "bench".into();
            m.severity = (i % 8) as i32;
            m.payload = "GET /index.html 200".into();
            m.add_field(Field::integer("status", [200, 404, 500][i % 3]));
            Pack::new(m)
        })
        .collect()
}

fn router(matchers: &[String]) -> (Router, Vec<Arc<Queue<Pack>>>) {
    let (trigger, _) = shutdown::channel();
    let mut queues = Vec::new();
    let subs = matchers
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let q = Arc::new(Queue::new(BATCH * 2));
            queues.push(q.clone());
            let matcher = Matcher::parse(m).expect("valid matcher");
            Subscriber::new(
                format!("out{i}").into(),
                Some(matcher),
                q,
                FullAction::Drop,
                Arc::new(PluginStats::default()),
                false,
            )
        })
        .collect();
    (
        Router::new(subs, 4, Arc::new(PluginStats::default()), trigger),
        queues,
    )
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("router");
    g.throughput(Throughput::Elements(BATCH as u64));
    let one = vec!["TRUE".to_string()];
    let ten: Vec<String> = (0..10)
        .map(|i| format!("Type == 'app.type{i}' && Fields[status] >= 200"))
        .collect();
    for (label, matchers) in [("1 output", one), ("10 outputs", ten)] {
        let (mut r, queues) = router(&matchers);
        let input = batch();
        let mut sink = Vec::with_capacity(BATCH * 2);
        g.bench_with_input(BenchmarkId::from_parameter(label), &input, |b, input| {
            b.iter(|| {
                r.route(input.clone());
                for q in &queues {
                    q.pop_batch(&mut sink, BATCH * 2, std::time::Duration::ZERO);
                    sink.clear();
                }
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
