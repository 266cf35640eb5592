//! Topics: cardlink creates what it needs with the admin client,
//! idempotently, and checks the layout the pipeline relies on (one
//! changelog partition per input partition). Every call is bounded: an
//! unreachable broker is a clear error, never a hang.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::metadata::Metadata;
use rdkafka::producer::{BaseProducer, DeliveryResult, Producer, ProducerContext};

use crate::{Config, Error};

/// Partition counts of the topics, as found or created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// Partitions of the input (and so of the state changelog).
    pub events: i32,
    /// Partitions of the offers topic.
    pub offers: i32,
}

/// What the pipeline needs of one topic.
struct Spec<'a> {
    name: &'a str,
    partitions: i32,
    configs: Vec<(&'a str, String)>,
}

fn admin(config: &Config) -> Result<AdminClient<DefaultClientContext>, Error> {
    config.finish(config.client("admin")).create().map_err(|e| Error::Config(format!("admin client: {e}")))
}

/// Fetches cluster metadata (all topics, or one), bounded by the start-up
/// timeout.
fn metadata(
    admin: &AdminClient<DefaultClientContext>,
    config: &Config,
    topic: Option<&str>,
) -> Result<Metadata, Error> {
    admin.inner().fetch_metadata(topic, config.startup_timeout()).map_err(|e| Error::Unreachable {
        bootstrap: config.kafka.bootstrap.clone(),
        secs: config.startup_timeout().as_secs(),
        detail: e.to_string(),
    })
}

/// Checks that a broker answers, within the start-up bound.
pub fn check_reachable(config: &Config) -> Result<(), Error> {
    reach(config)?;
    let admin = admin(config)?;
    metadata(&admin, config, None).map(|_| ())
}

/// Remembers the client errors that explain a failed connection. A wrong
/// SASL password or an untrusted certificate reaches the application only
/// as an error event (the admin client never polls for those), while the
/// metadata request itself just times out as "broker transport failure".
#[derive(Default)]
struct Probe {
    /// Authentication or certificate failure: no retry will help.
    refused: Mutex<Option<String>>,
    /// The latest other error, to explain a timeout.
    last: Mutex<Option<String>>,
}

impl ClientContext for Probe {
    fn error(&self, error: KafkaError, reason: &str) {
        let code = error.rdkafka_error_code();
        let refused =
            matches!(code, Some(RDKafkaErrorCode::Authentication | RDKafkaErrorCode::SaslAuthenticationFailed))
                || code == Some(RDKafkaErrorCode::SSL) && reason.contains("certificate");
        let slot = if refused { &self.refused } else { &self.last };
        *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason.to_owned());
    }
}

/// The probe produces nothing; a producer is used because its `poll`
/// serves error events.
impl ProducerContext for Probe {
    type DeliveryOpaque = ();

    fn delivery(&self, _: &DeliveryResult<'_>, _: ()) {}
}

/// Connects once before anything else, within the start-up bound, so that
/// wrong credentials or an untrusted broker certificate end the command at
/// once with librdkafka's reason (a configuration error, exit 2) instead of
/// a timeout that names no cause.
fn reach(config: &Config) -> Result<(), Error> {
    let probe: BaseProducer<Probe> = config
        .finish(config.client("probe"))
        .create_with_context(Probe::default())
        .map_err(|e| Error::Config(format!("Kafka client: {e}")))?;
    let deadline = Instant::now() + config.startup_timeout();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let result = probe.client().fetch_metadata(None, left.min(Duration::from_millis(400)));
        // Serves the queued error events into the context (each poll call
        // serves events until its time is up).
        probe.poll(Duration::from_millis(100));
        let ctx = probe.context();
        if let Some(reason) = ctx.refused.lock().unwrap_or_else(|p| p.into_inner()).take() {
            return Err(Error::Config(format!(
                "Kafka at {} refused the connection: {reason} (check kafka.security: protocol, sasl_mechanism, \
                 sasl_username, sasl_password, ssl_ca_location)",
                config.kafka.bootstrap
            )));
        }
        match result {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() >= deadline => {
                let last = ctx.last.lock().unwrap_or_else(|p| p.into_inner()).take();
                return Err(Error::Unreachable {
                    bootstrap: config.kafka.bootstrap.clone(),
                    secs: config.startup_timeout().as_secs(),
                    detail: last.map_or_else(|| e.to_string(), |l| format!("{e}; last error: {l}")),
                });
            }
            Err(_) => {}
        }
    }
}

fn partition_counts(md: &Metadata) -> BTreeMap<String, i32> {
    md.topics()
        .iter()
        .filter(|t| t.error().is_none() && !t.partitions().is_empty())
        .map(|t| (t.name().to_owned(), t.partitions().len() as i32))
        .collect()
}

/// Makes sure every topic exists with the right settings, creating the
/// missing ones (when `topics.create`), and returns the partition counts.
/// The state changelog must have exactly as many partitions as the input.
pub fn ensure_topics(config: &Config) -> Result<Layout, Error> {
    reach(config)?;
    let admin = admin(config)?;
    let existing = partition_counts(&metadata(&admin, config, None)?);
    let t = &config.topics;
    let events_partitions = existing.get(&t.events).copied().unwrap_or(t.partitions);
    let mut common = Vec::new();
    if let Some(n) = t.min_insync_replicas {
        common.push(("min.insync.replicas", n.to_string()));
    }
    let with = |extra: &[(&'static str, &str)]| {
        let mut c = common.clone();
        c.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
        c
    };
    let budget_topic = config.budget_topic();
    let state_max_bytes = (crate::pipeline::MAX_STATE_BYTES + 64 * 1024).to_string();
    let specs = [
        Spec { name: &t.events, partitions: events_partitions, configs: with(&[]) },
        Spec { name: &t.offers, partitions: t.offers_partitions, configs: with(&[("cleanup.policy", "compact")]) },
        Spec { name: &t.rewards, partitions: t.partitions, configs: with(&[]) },
        Spec { name: &t.dead_letters, partitions: t.partitions, configs: with(&[]) },
        // The changelog is compacted: only each card's latest state is kept.
        // Smaller segments let the cleaner keep restores short.
        Spec {
            name: &t.state,
            partitions: events_partitions,
            configs: with(&[
                ("cleanup.policy", "compact"),
                ("segment.bytes", "67108864"),
                ("max.message.bytes", &state_max_bytes),
            ]),
        },
        // The budget-lease log is folded whole by every instance: one
        // partition (one order) and never deleted. Claims are rare.
        Spec {
            name: &budget_topic,
            partitions: 1,
            configs: with(&[("cleanup.policy", "delete"), ("retention.ms", "-1"), ("retention.bytes", "-1")]),
        },
    ];
    let missing: Vec<&Spec> = specs.iter().filter(|s| !existing.contains_key(s.name)).collect();
    if !missing.is_empty() {
        if !t.create {
            let names: Vec<&str> = missing.iter().map(|s| s.name).collect();
            return Err(Error::Topic { topic: names.join(", "), detail: "missing, and topics.create is false".into() });
        }
        create(&admin, config, &missing)?;
    }
    let counts = wait_visible(&admin, config, &specs)?;
    let state = counts[&t.state];
    let events = counts[&t.events];
    if state != events {
        return Err(Error::Topic {
            topic: t.state.clone(),
            detail: format!(
                "has {state} partitions but {} has {events}: the state of input partition p lives in \
                 changelog partition p, so they must match (recreate the changelog, or use a new name)",
                t.events
            ),
        });
    }
    Ok(Layout { events, offers: counts[&t.offers] })
}

fn create(admin: &AdminClient<DefaultClientContext>, config: &Config, specs: &[&Spec]) -> Result<(), Error> {
    let new: Vec<NewTopic> = specs
        .iter()
        .map(|s| {
            let mut n = NewTopic::new(s.name, s.partitions, TopicReplication::Fixed(config.topics.replication_factor));
            for (k, v) in &s.configs {
                n = n.set(k, v);
            }
            n
        })
        .collect();
    let bound = config.startup_timeout();
    let opts = AdminOptions::new().request_timeout(Some(bound)).operation_timeout(Some(bound));
    let results = futures_executor::block_on(admin.create_topics(new.iter(), &opts))
        .map_err(|e| Error::Topic { topic: specs[0].name.into(), detail: format!("cannot create: {e}") })?;
    for r in results {
        match r {
            Ok(name) => log::info!("created topic {name}"),
            // Another instance created it first: that is the idempotent case.
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => {
                return Err(Error::Topic { topic: name, detail: format!("cannot create: {code}") });
            }
        }
    }
    Ok(())
}

/// Waits (bounded) until every topic shows all its partitions with a
/// leader: a freshly created topic takes a moment to appear everywhere.
fn wait_visible(
    admin: &AdminClient<DefaultClientContext>,
    config: &Config,
    specs: &[Spec],
) -> Result<BTreeMap<String, i32>, Error> {
    let deadline = Instant::now() + config.startup_timeout();
    let mut counts = BTreeMap::new();
    for s in specs {
        loop {
            let md = metadata(admin, config, Some(s.name))?;
            let ready = md
                .topics()
                .iter()
                .find(|t| t.name() == s.name && t.error().is_none())
                .filter(|t| !t.partitions().is_empty() && t.partitions().iter().all(|p| p.leader() >= 0))
                .map(|t| t.partitions().len() as i32);
            if let Some(n) = ready {
                counts.insert(s.name.to_owned(), n);
                break;
            }
            if Instant::now() >= deadline {
                return Err(Error::Topic {
                    topic: s.name.into(),
                    detail: format!("not available within {} s", config.startup_timeout().as_secs()),
                });
            }
            thread::sleep(Duration::from_millis(100));
        }
    }
    Ok(counts)
}

/// Deletes topics (the benchmark's, when it is done); missing ones are
/// fine.
pub fn delete_topics(config: &Config, topics: &[&str]) -> Result<(), Error> {
    let admin = admin(config)?;
    let bound = config.startup_timeout();
    let opts = AdminOptions::new().request_timeout(Some(bound)).operation_timeout(Some(bound));
    let results = futures_executor::block_on(admin.delete_topics(topics, &opts))
        .map_err(|e| Error::Topic { topic: topics.join(", "), detail: format!("cannot delete: {e}") })?;
    for r in results {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::UnknownTopicOrPartition)) => {}
            Err((name, code)) => return Err(Error::Topic { topic: name, detail: format!("cannot delete: {code}") }),
        }
    }
    Ok(())
}
