//! Configuration of the live pipeline: one TOML file, defaults for
//! everything, environment overrides on top.
//!
//! ```toml
//! [kafka]
//! bootstrap = "127.0.0.1:19092"
//! [kafka.security]
//! protocol = "SASL_SSL"
//! sasl_mechanism = "SCRAM-SHA-512"
//! sasl_username = "cardlink"
//! sasl_password = "..."
//! [kafka.options]            # passed to librdkafka as they are
//! "socket.keepalive.enable" = "true"
//! [topics]
//! events = "card-events"
//! partitions = 6
//! [formats]
//! events = "protobuf"        # or "json", per topic
//! [pipeline]
//! group_id = "cardlink"
//! instance_id = "0"
//! commit_max_records = 20000
//! commit_max_ms = 25
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;

#[cfg(feature = "client")]
use rdkafka::ClientConfig;
use serde::Deserialize;

use crate::Error;

/// The whole configuration. Every field has a default, so an empty file
/// (or none) runs against a local broker.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where Kafka is and how to talk to it.
    pub kafka: KafkaConfig,
    /// Topic names and how they are created.
    pub topics: TopicsConfig,
    /// Wire format of each topic.
    pub formats: FormatsConfig,
    /// The consume–match–produce loop.
    pub pipeline: PipelineConfig,
    /// The admin HTTP server (crates/cardlink-admin).
    pub admin: AdminConfig,
}

/// The admin HTTP server of `cardlink run`.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// `host:port` to listen on; containers use `0.0.0.0:9180`. Empty: no
    /// admin server.
    pub listen: String,
    /// Bearer token of the write endpoints (`PUT`/`DELETE /v1/offers/{id}`);
    /// without one, writes are refused. Never printed.
    pub token: Option<String>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig { listen: "127.0.0.1:9180".into(), token: None }
    }
}

impl fmt::Debug for AdminConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminConfig")
            .field("listen", &self.listen)
            .field("token", &self.token.as_ref().map(|_| REDACTED))
            .finish()
    }
}

/// Connection settings shared by every client.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// Bootstrap servers, comma separated (`bootstrap.servers`).
    pub bootstrap: String,
    /// `client.id` prefix of every client.
    pub client_id: String,
    /// Security: TLS and SASL.
    pub security: SecurityConfig,
    /// librdkafka options passed through to every client; they win over
    /// cardlink's own settings.
    pub options: BTreeMap<String, String>,
    /// Bound on start-up operations (metadata, topic creation), in ms: an
    /// unreachable broker is an error after this long, never a hang.
    pub startup_timeout_ms: u64,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            bootstrap: "127.0.0.1:19092".into(),
            client_id: "cardlink".into(),
            security: SecurityConfig::default(),
            options: BTreeMap::new(),
            startup_timeout_ms: 15_000,
        }
    }
}

/// Secret-free debug output: option values whose name looks secret are
/// replaced.
impl fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let options: BTreeMap<&str, &str> = self
            .options
            .iter()
            .map(|(k, v)| (k.as_str(), if is_secret_key(k) { REDACTED } else { v.as_str() }))
            .collect();
        f.debug_struct("KafkaConfig")
            .field("bootstrap", &self.bootstrap)
            .field("client_id", &self.client_id)
            .field("security", &self.security)
            .field("options", &options)
            .field("startup_timeout_ms", &self.startup_timeout_ms)
            .finish()
    }
}

const REDACTED: &str = "<redacted>";

/// True for option names that may hold secrets. Deliberately broad: a
/// redacted harmless value (`ssl.key.location`, a path) costs nothing,
/// while a missed one (`ssl.key.pem`, `ssl.keystore.password`,
/// `sasl.oauthbearer.client.secret`, `sasl.jaas.config`) leaks a secret.
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    ["password", "secret", "token", "key", "credential", "jaas", ".pem"].iter().any(|s| k.contains(s))
}

/// A TOML error as line, column and message, without the source excerpt
/// toml's own `Display` prints: that excerpt is the offending line, which
/// may hold a secret (a mistyped `sasl_pasword = "..."`). Messages about a
/// line that looks secret keep only the field names they quote ("unknown
/// field", "missing field"), never a value ("invalid type: integer `5`").
fn toml_error(text: &str, e: &toml::de::Error) -> String {
    let message = e.message();
    let Some(span) = e.span() else { return message.to_owned() };
    let start = span.start.min(text.len());
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let line_no = text[..start].matches('\n').count() + 1;
    let column = text[line_start..start].chars().count() + 1;
    let line = text[line_start..].lines().next().unwrap_or("");
    let names_only = message.starts_with("unknown field") || message.starts_with("missing field");
    let message = if is_secret_key(line) && !names_only {
        "invalid value (not shown: the line looks like it holds a secret)"
    } else {
        message
    };
    format!("line {line_no}, column {column}: {message}")
}

/// TLS and SASL settings (`security.protocol`, `sasl.*`, `ssl.*`).
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct SecurityConfig {
    /// `PLAINTEXT`, `SSL`, `SASL_PLAINTEXT` or `SASL_SSL`; librdkafka's
    /// default (plaintext) when absent.
    pub protocol: Option<String>,
    /// `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    pub sasl_mechanism: Option<String>,
    /// SASL user name.
    pub sasl_username: Option<String>,
    /// SASL password; never printed.
    pub sasl_password: Option<String>,
    /// CA certificate file for TLS (`ssl.ca.location`).
    pub ssl_ca_location: Option<String>,
}

impl fmt::Debug for SecurityConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecurityConfig")
            .field("protocol", &self.protocol)
            .field("sasl_mechanism", &self.sasl_mechanism)
            .field("sasl_username", &self.sasl_username)
            .field("sasl_password", &self.sasl_password.as_ref().map(|_| REDACTED))
            .field("ssl_ca_location", &self.ssl_ca_location)
            .finish()
    }
}

/// Topic names and creation settings.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct TopicsConfig {
    /// Input: card events keyed by card token.
    pub events: String,
    /// Offers: compacted, keyed by offer id; an empty value retires.
    pub offers: String,
    /// Output: reward records keyed by card token.
    pub rewards: String,
    /// Output: rejected records with their reasons.
    pub dead_letters: String,
    /// Internal: compacted changelog of per-card state, one partition per
    /// input partition.
    pub state: String,
    /// Internal: the budget-lease log (docs/kafka.md, "Budgets"); one
    /// partition, kept forever. Default: the state topic's name + `-budget`.
    pub budget: Option<String>,
    /// Partitions of `events` (and so of `state`), `rewards` and
    /// `dead_letters` when cardlink creates them.
    pub partitions: i32,
    /// Partitions of `offers` when cardlink creates it.
    pub offers_partitions: i32,
    /// Replication factor of every topic cardlink creates.
    pub replication_factor: i32,
    /// `min.insync.replicas` of the topics cardlink creates; the broker's
    /// default when absent.
    pub min_insync_replicas: Option<u32>,
    /// Create missing topics (idempotently); when false a missing topic is
    /// an error.
    pub create: bool,
}

impl Default for TopicsConfig {
    fn default() -> Self {
        TopicsConfig {
            events: "card-events".into(),
            offers: "offers".into(),
            rewards: "rewards".into(),
            dead_letters: "dead-letters".into(),
            state: "cardlink-state".into(),
            budget: None,
            partitions: 6,
            offers_partitions: 1,
            replication_factor: 1,
            min_insync_replicas: None,
            create: true,
        }
    }
}

/// Wire format of a topic's values.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum TopicFormat {
    /// The `cardlink.v1` protobuf message of the topic.
    #[default]
    Protobuf,
    /// The contract's JSON form, one object per record.
    Json,
}

impl TopicFormat {
    fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "protobuf" | "proto" => Some(TopicFormat::Protobuf),
            "json" => Some(TopicFormat::Json),
            _ => None,
        }
    }
}

/// Wire format per topic (the state changelog is always protobuf).
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct FormatsConfig {
    /// Card events.
    pub events: TopicFormat,
    /// Offers.
    pub offers: TopicFormat,
    /// Reward records.
    pub rewards: TopicFormat,
    /// Dead letters.
    pub dead_letters: TopicFormat,
}

/// The transactional loop.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineConfig {
    /// Consumer group of every instance.
    pub group_id: String,
    /// This instance's id, unique in the group and stable across restarts:
    /// it names the transactional producer (`<prefix>-<instance_id>`), so a
    /// restarted instance fences and aborts its predecessor's transaction.
    pub instance_id: String,
    /// Prefix of the transactional id.
    pub transactional_id_prefix: String,
    /// Join the group as a static member (`group.instance.id` = group and
    /// instance id), so a restarted instance gets its partitions back at
    /// once, without a rebalance, instead of after the session timeout.
    /// The price: a stopped instance's partitions wait the session timeout
    /// before they move, and after a coordinator outage longer than the
    /// session timeout librdkafka reports the member fenced (the pipeline
    /// then restarts itself inside the process).
    pub static_membership: bool,
    /// Commit after this many input records…
    pub commit_max_records: usize,
    /// …or this many milliseconds after the transaction began, whichever
    /// comes first.
    pub commit_max_ms: u64,
    /// `transaction.timeout.ms`: the broker aborts a transaction left open
    /// longer (a crashed instance's).
    pub transaction_timeout_ms: u64,
    /// `session.timeout.ms` of the consumer: how long a dead instance holds
    /// its partitions.
    pub session_timeout_ms: u64,
    /// Days a card remembers its event ids (R2) and closed transactions
    /// after its newest event; absent (the default): for ever, exactly as
    /// replay does. A finite value bounds each card's memory; see
    /// docs/reliability.md, "State retention", for what happens to an
    /// event older than that (0 is refused).
    pub retention_days: Option<std::num::NonZeroU32>,
    /// Most records a partition keeps in memory while one of its events
    /// waits for a budget claim (docs/kafka.md, "Budgets"); beyond, the
    /// partition is paused and read again from the broker once the claim
    /// is decided.
    pub max_held_records: usize,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            group_id: "cardlink".into(),
            instance_id: "0".into(),
            transactional_id_prefix: "cardlink".into(),
            static_membership: true,
            // Measured with `cardlink bench-kafka` (docs/kafka.md): the
            // rate hardly depends on the interval, while p99 latency at
            // 20 000 events/s grows from ~100 ms (25 ms) to ~185 ms (100 ms).
            commit_max_records: 20_000,
            commit_max_ms: 25,
            transaction_timeout_ms: 10_000,
            session_timeout_ms: 10_000,
            retention_days: None,
            max_held_records: 20_000,
        }
    }
}

/// Environment variables that override the file, with what they set.
pub const ENV_OVERRIDES: &[(&str, &str)] = &[
    ("CARDLINK_KAFKA_BOOTSTRAP", "kafka.bootstrap"),
    ("CARDLINK_KAFKA_SECURITY_PROTOCOL", "kafka.security.protocol"),
    ("CARDLINK_KAFKA_SASL_MECHANISM", "kafka.security.sasl_mechanism"),
    ("CARDLINK_KAFKA_SASL_USERNAME", "kafka.security.sasl_username"),
    ("CARDLINK_KAFKA_SASL_PASSWORD", "kafka.security.sasl_password"),
    ("CARDLINK_KAFKA_SSL_CA_LOCATION", "kafka.security.ssl_ca_location"),
    ("CARDLINK_TOPIC_EVENTS", "topics.events"),
    ("CARDLINK_TOPIC_OFFERS", "topics.offers"),
    ("CARDLINK_TOPIC_REWARDS", "topics.rewards"),
    ("CARDLINK_TOPIC_DEAD_LETTERS", "topics.dead_letters"),
    ("CARDLINK_TOPIC_STATE", "topics.state"),
    ("CARDLINK_TOPIC_BUDGET", "topics.budget"),
    ("CARDLINK_PARTITIONS", "topics.partitions"),
    ("CARDLINK_REPLICATION_FACTOR", "topics.replication_factor"),
    ("CARDLINK_FORMAT_EVENTS", "formats.events"),
    ("CARDLINK_FORMAT_OFFERS", "formats.offers"),
    ("CARDLINK_FORMAT_REWARDS", "formats.rewards"),
    ("CARDLINK_FORMAT_DEAD_LETTERS", "formats.dead_letters"),
    ("CARDLINK_GROUP_ID", "pipeline.group_id"),
    ("CARDLINK_INSTANCE_ID", "pipeline.instance_id"),
    ("CARDLINK_COMMIT_MAX_RECORDS", "pipeline.commit_max_records"),
    ("CARDLINK_COMMIT_MAX_MS", "pipeline.commit_max_ms"),
    ("CARDLINK_RETENTION_DAYS", "pipeline.retention_days"),
    ("CARDLINK_ADMIN_LISTEN", "admin.listen"),
    ("CARDLINK_ADMIN_TOKEN", "admin.token"),
];

impl Config {
    /// Reads a TOML file (when given) and applies the environment
    /// overrides of [`ENV_OVERRIDES`].
    pub fn load(path: Option<&Path>) -> Result<Config, Error> {
        let mut config = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| Error::Config(format!("cannot read {}: {e}", p.display())))?;
                toml::from_str(&text)
                    .map_err(|e| Error::Config(format!("{}: {}", p.display(), toml_error(&text, &e))))?
            }
            None => Config::default(),
        };
        config.apply_env(|k| std::env::var(k).ok())?;
        config.validate()?;
        Ok(config)
    }

    /// Parses TOML text (no environment, no validation).
    pub fn from_toml(text: &str) -> Result<Config, Error> {
        toml::from_str(text).map_err(|e| Error::Config(toml_error(text, &e)))
    }

    /// Applies overrides read through `get` (the environment in
    /// [`Config::load`]).
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), Error> {
        for (var, _) in ENV_OVERRIDES {
            let Some(v) = get(var) else { continue };
            let number =
                |v: &str| v.trim().parse::<u64>().map_err(|_| Error::Config(format!("{var}: not a number: {v}")));
            // A count that does not fit Kafka's i32 is refused, not wrapped.
            let count =
                |v: &str| i32::try_from(number(v)?).map_err(|_| Error::Config(format!("{var}: {v} is out of range")));
            let format = |v: &str| {
                TopicFormat::parse(v).ok_or_else(|| Error::Config(format!("{var}: expected json or protobuf, got {v}")))
            };
            match *var {
                "CARDLINK_KAFKA_BOOTSTRAP" => self.kafka.bootstrap = v,
                "CARDLINK_KAFKA_SECURITY_PROTOCOL" => self.kafka.security.protocol = Some(v),
                "CARDLINK_KAFKA_SASL_MECHANISM" => self.kafka.security.sasl_mechanism = Some(v),
                "CARDLINK_KAFKA_SASL_USERNAME" => self.kafka.security.sasl_username = Some(v),
                "CARDLINK_KAFKA_SASL_PASSWORD" => self.kafka.security.sasl_password = Some(v),
                "CARDLINK_KAFKA_SSL_CA_LOCATION" => self.kafka.security.ssl_ca_location = Some(v),
                "CARDLINK_TOPIC_EVENTS" => self.topics.events = v,
                "CARDLINK_TOPIC_OFFERS" => self.topics.offers = v,
                "CARDLINK_TOPIC_REWARDS" => self.topics.rewards = v,
                "CARDLINK_TOPIC_DEAD_LETTERS" => self.topics.dead_letters = v,
                "CARDLINK_TOPIC_STATE" => self.topics.state = v,
                "CARDLINK_TOPIC_BUDGET" => self.topics.budget = Some(v),
                "CARDLINK_PARTITIONS" => self.topics.partitions = count(&v)?,
                "CARDLINK_REPLICATION_FACTOR" => self.topics.replication_factor = count(&v)?,
                "CARDLINK_FORMAT_EVENTS" => self.formats.events = format(&v)?,
                "CARDLINK_FORMAT_OFFERS" => self.formats.offers = format(&v)?,
                "CARDLINK_FORMAT_REWARDS" => self.formats.rewards = format(&v)?,
                "CARDLINK_FORMAT_DEAD_LETTERS" => self.formats.dead_letters = format(&v)?,
                "CARDLINK_GROUP_ID" => self.pipeline.group_id = v,
                "CARDLINK_INSTANCE_ID" => self.pipeline.instance_id = v,
                "CARDLINK_COMMIT_MAX_RECORDS" => self.pipeline.commit_max_records = number(&v)? as usize,
                "CARDLINK_COMMIT_MAX_MS" => self.pipeline.commit_max_ms = number(&v)?,
                "CARDLINK_RETENTION_DAYS" => {
                    let days = u32::try_from(number(&v)?).ok().and_then(std::num::NonZeroU32::new);
                    self.pipeline.retention_days = Some(
                        days.ok_or_else(|| Error::Config(format!("{var}: expected 1 to 4294967295 days, got {v}")))?,
                    );
                }
                "CARDLINK_ADMIN_LISTEN" => self.admin.listen = v,
                "CARDLINK_ADMIN_TOKEN" => self.admin.token = Some(v),
                _ => unreachable!("every override is matched"),
            }
        }
        Ok(())
    }

    /// Checks what serde cannot: non-empty names, positive counts.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |m: String| Err(Error::Config(m));
        if self.kafka.bootstrap.trim().is_empty() {
            return bad("kafka.bootstrap is empty".into());
        }
        let t = &self.topics;
        for (name, v) in [
            ("events", &t.events),
            ("offers", &t.offers),
            ("rewards", &t.rewards),
            ("dead_letters", &t.dead_letters),
            ("state", &t.state),
            ("budget", &self.budget_topic()),
        ] {
            if v.is_empty() {
                return bad(format!("topics.{name} is empty"));
            }
        }
        let budget = self.budget_topic();
        let mut names = [&t.events, &t.offers, &t.rewards, &t.dead_letters, &t.state, &budget];
        names.sort();
        if names.windows(2).any(|w| w[0] == w[1]) {
            return bad("topics: every topic needs its own name".into());
        }
        if t.partitions < 1 || t.offers_partitions < 1 || t.replication_factor < 1 {
            return bad("topics: partitions and replication_factor must be at least 1".into());
        }
        let p = &self.pipeline;
        if p.group_id.is_empty() || p.instance_id.is_empty() || p.transactional_id_prefix.is_empty() {
            return bad("pipeline: group_id, instance_id and transactional_id_prefix must not be empty".into());
        }
        if p.commit_max_records == 0 || p.commit_max_ms == 0 || p.max_held_records == 0 {
            return bad("pipeline: commit_max_records, commit_max_ms and max_held_records must be at least 1".into());
        }
        Ok(())
    }

    /// The budget-lease topic's name.
    pub fn budget_topic(&self) -> String {
        self.topics.budget.clone().unwrap_or_else(|| format!("{}-budget", self.topics.state))
    }

    /// The transactional id of this instance.
    pub fn transactional_id(&self) -> String {
        format!("{}-{}", self.pipeline.transactional_id_prefix, self.pipeline.instance_id)
    }

    /// The commit interval.
    pub fn commit_interval(&self) -> Duration {
        Duration::from_millis(self.pipeline.commit_max_ms)
    }

    /// The start-up bound.
    pub fn startup_timeout(&self) -> Duration {
        Duration::from_millis(self.kafka.startup_timeout_ms)
    }

    /// A librdkafka client configuration with the connection, security and
    /// pass-through settings; `role` ends the client id.
    #[cfg(feature = "client")]
    pub fn client(&self, role: &str) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.kafka.bootstrap);
        c.set("client.id", format!("{}-{role}", self.kafka.client_id));
        let s = &self.kafka.security;
        for (key, v) in [
            ("security.protocol", &s.protocol),
            ("sasl.mechanisms", &s.sasl_mechanism),
            ("sasl.username", &s.sasl_username),
            ("sasl.password", &s.sasl_password),
            ("ssl.ca.location", &s.ssl_ca_location),
        ] {
            if let Some(v) = v {
                c.set(key, v);
            }
        }
        // A full metadata refresh every 10 s instead of librdkafka's 300 s:
        // after a broker restart a client can keep a partition's leader as
        // unknown until the next full refresh (librdkafka#4976), and every
        // record for it waits meanwhile. Overridable through the options.
        c.set("topic.metadata.refresh.interval.ms", "10000");
        // librdkafka logs through the `log` crate at these levels.
        c.set_log_level(rdkafka::config::RDKafkaLogLevel::Warning);
        c
    }

    /// Adds the pass-through options last, so they win.
    #[cfg(feature = "client")]
    pub fn finish(&self, mut c: ClientConfig) -> ClientConfig {
        for (k, v) in &self.kafka.options {
            c.set(k, v);
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_the_defaults() {
        assert_eq!(Config::from_toml("").unwrap(), Config::default());
    }

    #[test]
    fn unknown_fields_are_refused() {
        let e = Config::from_toml("[pipeline]\ncommit_max_recs = 5\n").unwrap_err();
        assert!(e.to_string().contains("commit_max_recs"), "{e}");
        assert!(Config::from_toml("[nope]\n").is_err());
    }

    #[test]
    fn file_and_env_combine() {
        let mut c = Config::from_toml(
            "[kafka]\nbootstrap = \"a:1\"\n[kafka.options]\n\"linger.ms\" = \"2\"\n[topics]\nevents = \"ev\"\npartitions = 3\n[formats]\nrewards = \"json\"\n",
        )
        .unwrap();
        assert_eq!(c.topics.partitions, 3);
        assert_eq!(c.formats.rewards, TopicFormat::Json);
        c.apply_env(|k| match k {
            "CARDLINK_KAFKA_BOOTSTRAP" => Some("b:2".into()),
            "CARDLINK_INSTANCE_ID" => Some("7".into()),
            "CARDLINK_FORMAT_EVENTS" => Some("json".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(c.kafka.bootstrap, "b:2");
        assert_eq!(c.topics.events, "ev");
        assert_eq!(c.transactional_id(), "cardlink-7");
        assert_eq!(c.formats.events, TopicFormat::Json);
        c.validate().unwrap();
        assert!(c.apply_env(|k| (k == "CARDLINK_PARTITIONS").then(|| "x".into())).is_err());
        // 2^32 + 1 once wrapped to 1 partition.
        let e = c.apply_env(|k| (k == "CARDLINK_PARTITIONS").then(|| "4294967297".into())).unwrap_err();
        assert!(e.to_string().contains("out of range"), "{e}");
    }

    #[test]
    fn retention_is_unlimited_unless_set() {
        assert_eq!(Config::default().pipeline.retention_days, None);
        let c = Config::from_toml("[pipeline]\nretention_days = 400\n").unwrap();
        assert_eq!(c.pipeline.retention_days.map(|d| d.get()), Some(400));
        assert!(Config::from_toml("[pipeline]\nretention_days = 0\n").is_err());
        let mut c = Config::default();
        c.apply_env(|k| (k == "CARDLINK_RETENTION_DAYS").then(|| "30".into())).unwrap();
        assert_eq!(c.pipeline.retention_days.map(|d| d.get()), Some(30));
        assert!(c.apply_env(|k| (k == "CARDLINK_RETENTION_DAYS").then(|| "0".into())).is_err());
        c.kafka.bootstrap = "127.0.0.1:9092".into();
        c.validate().unwrap();
    }

    #[test]
    fn secrets_are_redacted_in_debug_output() {
        let mut c = Config::default();
        c.kafka.security.sasl_password = Some("hunter2".into());
        c.kafka.options.insert("ssl.key.password".into(), "swordfish".into());
        c.kafka.options.insert("linger.ms".into(), "5".into());
        c.admin.token = Some("opensesame".into());
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2") && !shown.contains("swordfish"), "{shown}");
        assert!(!shown.contains("opensesame"), "{shown}");
        assert!(shown.contains("linger.ms") && shown.contains(REDACTED));
    }

    /// Every pass-through option whose name looks secret is hidden in the
    /// configuration dump; ordinary ones are shown.
    #[test]
    fn secret_looking_options_are_hidden() {
        fn check(key: &str, hidden: bool) {
            let mut c = Config::default();
            c.kafka.options.insert(key.into(), "v4lue-1n-question".into());
            let shown = format!("{c:?}");
            assert_eq!(!shown.contains("v4lue-1n-question"), hidden, "{key}: {shown}");
            assert_eq!(is_secret_key(key), hidden, "{key}");
        }
        check("sasl.password", true);
        check("ssl.key.password", true);
        check("ssl.keystore.password", true);
        check("ssl.truststore.password", true);
        check("ssl.key.pem", true);
        check("ssl_key", true);
        check("ssl.keystore.location", true);
        check("sasl.oauthbearer.client.secret", true);
        check("sasl.oauthbearer.token.endpoint.url", true);
        check("sasl.jaas.config", true);
        check("aws.secret.access.key", true);
        check("Some.CREDENTIALS.file", true);
        check("linger.ms", false);
        check("socket.keepalive.enable", false);
        check("ssl.ca.location", false);
        check("sasl.username", false);
    }

    /// A TOML error quotes neither the offending line nor, on a line that
    /// looks secret, the value; it still says where and what.
    #[test]
    fn toml_errors_do_not_quote_secrets() {
        fn check(text: &str, secret: &str, says: &str) {
            let e = Config::from_toml(text).unwrap_err().to_string();
            assert!(!e.contains(secret), "{e}");
            assert!(e.contains(says), "{e}");
        }
        let mistyped = "[kafka.security]\nprotocol = \"SASL_SSL\"\nsasl_pasword = \"hunter2\"\n";
        check(mistyped, "hunter2", "line 3, column 1: unknown field `sasl_pasword`");
        check("[kafka.security]\nsasl_password = 918273645\n", "918273645", "line 2");
        check("[kafka]\noptions = { \"ssl.key.password\" = 5566778899 }\n", "5566778899", "line 2");
        check("[kafka.options]\n\"sasl.password\" = [\"s3cr3t-in-a-list\"]\n", "s3cr3t-in-a-list", "line 2");
        // Ordinary errors keep their detail.
        check("[topics]\npartitions = \"six\"\n", "\u{0}", "invalid type");
    }

    #[test]
    fn validation_names_the_problem() {
        let mut c = Config::default();
        c.topics.rewards = c.topics.events.clone();
        assert!(c.validate().unwrap_err().to_string().contains("own name"));
        let mut c = Config::default();
        c.pipeline.commit_max_ms = 0;
        assert!(c.validate().is_err());
    }
}
