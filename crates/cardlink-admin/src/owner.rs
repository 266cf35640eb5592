//! Which instance holds a card: the card's input partition by Kafka's
//! default partitioner, and the partition's owner from the consumer
//! group's membership.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use cardlink_kafka::Config;
use rdkafka::consumer::{BaseConsumer, Consumer};
use serde::Serialize;
use utoipa::ToSchema;

/// Kafka's murmur2 (the Java client's `Utils.murmur2`), which its default
/// partitioner and librdkafka's `murmur2_random` apply to record keys.
pub fn murmur2(data: &[u8]) -> u32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h = SEED ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        for (i, b) in rest.iter().enumerate() {
            h ^= u32::from(*b) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}

/// The partition of a keyed record among `partitions` (positive).
pub fn partition_of(key: &[u8], partitions: i32) -> i32 {
    ((murmur2(key) & 0x7fff_ffff) % partitions as u32) as i32
}

/// A consumer group member, as the group coordinator describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct OwnerView {
    /// The cardlink instance id, when the member is a cardlink pipeline.
    pub instance_id: Option<String>,
    /// The member's Kafka client id.
    pub client_id: String,
    /// The member's host, as the coordinator saw its connection.
    pub host: String,
}

/// Group members with the input partitions each holds.
type Members = Vec<(OwnerView, Vec<i32>)>;

/// Group members and the input partitions each holds, cached briefly:
/// a burst of card look-ups costs one group description.
pub struct Owners {
    config: Config,
    client: Mutex<Option<BaseConsumer>>,
    cache: Mutex<Option<(Instant, Members)>>,
}

const CACHE_FOR: Duration = Duration::from_secs(3);
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

impl Owners {
    /// Looks owners up in the group and topics of `config`.
    pub fn new(config: Config) -> Owners {
        Owners { config, client: Mutex::new(None), cache: Mutex::new(None) }
    }

    /// The member holding `partition` of the input topic, if any. Blocks
    /// on Kafka (bounded): call it off the async runtime.
    pub fn owner_of(&self, partition: i32) -> Result<Option<OwnerView>, String> {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let fresh = matches!(&*cache, Some((at, _)) if at.elapsed() < CACHE_FOR);
        if !fresh {
            *cache = Some((Instant::now(), self.describe()?));
        }
        let members = &cache.as_ref().expect("filled above").1;
        Ok(members.iter().find(|(_, parts)| parts.contains(&partition)).map(|(m, _)| m.clone()))
    }

    fn describe(&self) -> Result<Members, String> {
        let mut client = self.client.lock().unwrap_or_else(|p| p.into_inner());
        if client.is_none() {
            let c = self.config.finish(self.config.client("admin-lookup"));
            *client = Some(c.create().map_err(|e| format!("cannot create a Kafka client: {e}"))?);
        }
        let group = &self.config.pipeline.group_id;
        let list = client
            .as_ref()
            .expect("created above")
            .fetch_group_list(Some(group), LOOKUP_TIMEOUT)
            .map_err(|e| format!("cannot describe consumer group {group}: {e}"))?;
        let prefix = format!("{}-consumer-", self.config.kafka.client_id);
        let topic = &self.config.topics.events;
        let mut out = Vec::new();
        for g in list.groups().iter().filter(|g| g.name() == group) {
            for m in g.members() {
                let parts = m.assignment().and_then(|a| parse_assignment(a, topic)).unwrap_or_default();
                let owner = OwnerView {
                    instance_id: m.client_id().strip_prefix(&prefix).map(str::to_owned),
                    client_id: m.client_id().to_owned(),
                    host: m.client_host().trim_start_matches('/').to_owned(),
                };
                out.push((owner, parts));
            }
        }
        Ok(out)
    }
}

/// The partitions of `topic` in a consumer protocol assignment
/// (`version: i16, [topic: string, [partition: i32]], user_data: bytes`;
/// the same layout in versions 0 to 3).
pub fn parse_assignment(bytes: &[u8], topic: &str) -> Option<Vec<i32>> {
    struct Cursor<'a>(&'a [u8]);
    impl Cursor<'_> {
        fn take(&mut self, n: usize) -> Option<&[u8]> {
            let (head, rest) = (self.0.get(..n)?, self.0.get(n..)?);
            self.0 = rest;
            Some(head)
        }
        fn i16(&mut self) -> Option<i16> {
            self.take(2).map(|b| i16::from_be_bytes([b[0], b[1]]))
        }
        fn i32(&mut self) -> Option<i32> {
            self.take(4).map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        }
    }
    let mut c = Cursor(bytes);
    let _version = c.i16()?;
    let topics = c.i32()?;
    let mut out = Vec::new();
    for _ in 0..topics.max(0) {
        let len = c.i16()?;
        let name = c.take(len.max(0) as usize)?.to_vec();
        let n = c.i32()?;
        for _ in 0..n.max(0) {
            let p = c.i32()?;
            if name == topic.as_bytes() {
                out.push(p);
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: i32) {
        assert_eq!(murmur2(input.as_bytes()) as i32, expected, "murmur2({input:?})");
    }

    #[test]
    fn murmur2_matches_kafkas_test_vectors() {
        // Kafka's UtilsTest.testMurmur2.
        check("21", -973932308);
        check("foobar", -790332482);
        check("a-little-bit-long-string", -985981536);
        check("a-little-bit-longer-string", -1486304829);
        check("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971);
        check("abc", 479470107);
        assert!((0..6).contains(&partition_of(b"foobar", 6)));
        assert_eq!(partition_of(b"foobar", 1), 0);
    }

    #[test]
    fn assignments_are_read_per_topic() {
        let mut b = vec![0, 1, 0, 0, 0, 2];
        for (topic, parts) in [("ev", &[0i32, 4][..]), ("other", &[1i32][..])] {
            b.extend((topic.len() as i16).to_be_bytes());
            b.extend(topic.as_bytes());
            b.extend((parts.len() as i32).to_be_bytes());
            for p in parts {
                b.extend(p.to_be_bytes());
            }
        }
        b.extend((-1i32).to_be_bytes());
        assert_eq!(parse_assignment(&b, "ev"), Some(vec![0, 4]));
        assert_eq!(parse_assignment(&b, "nope"), Some(vec![]));
        assert_eq!(parse_assignment(&b[..9], "ev"), None);
    }
}
