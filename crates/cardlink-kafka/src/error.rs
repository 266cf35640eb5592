//! Errors of the Kafka adapter, classified the way librdkafka classifies
//! transactional errors: retry the call, abort the transaction, or give up.

#[cfg(feature = "client")]
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

/// What to do about a failure inside the transactional loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Call again: the operation may succeed (a timeout, a coordinator
    /// moving).
    Retriable,
    /// Abort the open transaction, rewind the consumer to the committed
    /// offsets and restore the state of the partitions it touched.
    Abortable,
    /// Stop the process (non-zero exit): the producer was fenced by a newer
    /// instance with the same id, or librdkafka raised a fatal error. A
    /// supervisor restarts it; the restart recovers from what is committed.
    Fatal,
}

/// Errors of the Kafka adapter.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is invalid.
    #[error("configuration: {0}")]
    Config(String),
    /// No broker answered within the start-up bound.
    #[error("cannot reach Kafka at {bootstrap} within {secs} s: {detail}")]
    Unreachable {
        /// The bootstrap servers tried.
        bootstrap: String,
        /// The bound waited.
        secs: u64,
        /// librdkafka's reason.
        detail: String,
    },
    /// A topic is missing, could not be created, or is laid out wrongly.
    #[error("topic {topic}: {detail}")]
    Topic {
        /// The topic.
        topic: String,
        /// What is wrong.
        detail: String,
    },
    /// An offer file or record is invalid.
    #[error("{0}")]
    Offer(String),
    /// A Kafka operation failed.
    #[cfg(feature = "client")]
    #[error("{context}: {source}")]
    Kafka {
        /// What was being done.
        context: String,
        /// librdkafka's error.
        source: KafkaError,
        /// How the loop handles it.
        class: Class,
    },
    /// A failure the process cannot recover from by itself.
    #[error("{0}")]
    Fatal(String),
}

impl Error {
    /// Wraps a librdkafka error, classifying it.
    #[cfg(feature = "client")]
    pub fn kafka(context: impl Into<String>, source: KafkaError) -> Self {
        let class = classify(&source);
        Error::Kafka { context: context.into(), source, class }
    }

    /// How the loop handles this error; everything outside the loop's
    /// Kafka calls is fatal.
    pub fn class(&self) -> Class {
        match self {
            #[cfg(feature = "client")]
            Error::Kafka { class, .. } => *class,
            _ => Class::Fatal,
        }
    }
}

/// Classifies a librdkafka error. Transactional API errors carry
/// librdkafka's own flags; a failed produce inside a transaction means the
/// transaction cannot commit, so it is abortable unless the client itself
/// is in a fatal state (fenced).
#[cfg(feature = "client")]
pub fn classify(e: &KafkaError) -> Class {
    match e {
        KafkaError::Transaction(rd) => {
            if rd.is_fatal() {
                Class::Fatal
            } else if rd.txn_requires_abort() {
                Class::Abortable
            } else if rd.is_retriable() {
                Class::Retriable
            } else {
                // Neither abortable nor retriable (e.g. a wrong state): the
                // safe way out is a restart from what is committed.
                Class::Fatal
            }
        }
        _ => match e.rdkafka_error_code() {
            Some(
                RDKafkaErrorCode::Fatal
                | RDKafkaErrorCode::Fenced
                | RDKafkaErrorCode::ProducerFenced
                | RDKafkaErrorCode::InvalidProducerEpoch,
            ) => Class::Fatal,
            Some(RDKafkaErrorCode::QueueFull) => Class::Retriable,
            _ => Class::Abortable,
        },
    }
}
