//! The routes, their handlers and the OpenAPI document generated from
//! them.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use cardlink_kafka::{Config, Stats};
use cardlink_observe::{Answer, Ask, CardView, OfferView, Query, RewardView, offer_to_json};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Serialize;
use serde_json::Value;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::owner::{OwnerView, Owners, partition_of};
use crate::{auth, promtext};

/// How long a handler waits for the engine thread to answer a query.
const ASK_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a write waits to see its change in the live index.
const LIVE_WAIT: Duration = Duration::from_secs(5);
/// Bound of one publication to the offers topic.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(20);
/// Offers shown with their budget burn on the status page.
const STATUS_TOP_OFFERS: usize = 10;

/// What the handlers share.
pub(crate) struct App {
    pub(crate) mode: &'static str,
    pub(crate) token: Option<String>,
    pub(crate) stats: Arc<Stats>,
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) kafka: Option<Config>,
    pub(crate) owners: Option<Arc<Owners>>,
    pub(crate) prometheus: PrometheusHandle,
    pub(crate) started: Instant,
}

type Shared = State<Arc<App>>;

/// The router of every endpoint.
pub(crate) fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(status_page))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .route("/v1/status", get(status))
        .route("/v1/offers", get(list_offers))
        .route("/v1/offers/{id}", get(get_offer).put(put_offer).delete(delete_offer))
        .route("/v1/cards/{token}", get(get_card))
        .with_state(app)
}

/// The OpenAPI document of the admin API.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "cardlink admin API",
        description = "Health, readiness, metrics, the live offer index and card state of one cardlink instance. \
                       Writes need `Authorization: Bearer <admin token>`."
    ),
    paths(
        status_page,
        healthz,
        readyz,
        metrics,
        openapi,
        status,
        list_offers,
        get_offer,
        put_offer,
        delete_offer,
        get_card
    ),
    components(schemas(
        OfferView,
        OfferInput,
        CardView,
        RewardView,
        ErrorBody,
        Misdirected,
        OwnerView,
        Health,
        Published,
        StatusView,
        BudgetBurn
    )),
    modifiers(&BearerToken),
    tags(
        (name = "operations", description = "Probes, metrics and the status page"),
        (name = "offers", description = "The live offer index; writes go to the offers topic"),
        (name = "cards", description = "Card state, answered by the instance that owns the card's partition")
    )
)]
pub struct ApiDoc;

struct BearerToken;

impl Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("admin.token of the configuration, or CARDLINK_ADMIN_TOKEN"))
                    .build(),
            ),
        );
    }
}

/// An error, for a person and a program.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: String,
    /// The offer field at fault (`reward.percent`), for a rejected offer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// The card belongs to a partition another instance holds.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Misdirected {
    /// Why this instance does not answer.
    pub error: String,
    /// The card's input partition.
    pub partition: i32,
    /// The group member holding it.
    pub owner: OwnerView,
}

/// A probe's answer.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Health {
    /// `ok`, `ready` or `not ready`.
    pub status: String,
    /// Why not ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A write published to the offers topic but not yet seen in the live
/// index (it will be, once the offers follower reads it).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Published {
    /// The offer id.
    pub id: String,
    /// `published`.
    pub status: String,
    /// What to expect.
    pub detail: String,
}

/// An offer in the contract's format (section 2); validated by the same
/// code as offer files. Unknown fields are ignored.
#[allow(dead_code)]
#[derive(ToSchema)]
pub struct OfferInput {
    /// Must equal the id in the path.
    id: String,
    /// ISO 4217 code of purchases, thresholds and cash rewards.
    currency: String,
    /// Exactly one of `percent`, `fixed`, `points_per_unit` (decimal strings).
    #[schema(value_type = Object)]
    reward: Value,
    /// Optional lists `mids`, `mccs`, `countries`.
    #[schema(value_type = Object)]
    merchant: Option<Value>,
    /// Any of VISA, MASTERCARD, AMEX, DISCOVER.
    networks: Option<Vec<String>>,
    /// Decimal string.
    min_spend: Option<String>,
    /// Decimal string: cap per transaction.
    max_reward: Option<String>,
    /// RFC 3339 instant.
    valid_from: Option<String>,
    /// RFC 3339 instant.
    valid_until: Option<String>,
    /// Any of MON … SUN.
    days: Option<Vec<String>>,
    /// `{"from": "HH:MM", "until": "HH:MM"}` local time.
    #[schema(value_type = Object)]
    hours: Option<Value>,
    /// The card must activate the offer first.
    activation_required: Option<bool>,
    /// Live rewards per card.
    max_per_card: Option<u64>,
    /// Decimal string: total of live reward values.
    budget: Option<String>,
}

/// One offer's budget burn.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BudgetBurn {
    /// The offer id.
    pub offer: String,
    /// Share of the budget used by live rewards, 0..1.
    pub ratio: f64,
}

/// The numbers of the status page: totals since start (the page derives
/// rates from successive polls).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StatusView {
    /// `pipeline` or `demo`.
    pub mode: String,
    /// As `/readyz`.
    pub ready: bool,
    /// Seconds since the admin server started.
    pub uptime_seconds: f64,
    /// Card events read.
    pub events_total: f64,
    /// By kind, `invalid` for rejected ones.
    pub events_by_kind: BTreeMap<String, f64>,
    /// Rejected events.
    pub rejects_total: f64,
    /// By reason.
    pub rejects_by_reason: BTreeMap<String, f64>,
    /// Duplicates (R2).
    pub duplicates_total: f64,
    /// Reward records emitted.
    pub rewards_total: f64,
    /// By status.
    pub rewards_by_status: BTreeMap<String, f64>,
    /// Cash granted by currency, major units (observability only).
    pub cash_issued: BTreeMap<String, f64>,
    /// Points granted.
    pub points_issued: f64,
    /// Records behind, summed over the partitions held.
    pub consumer_lag: i64,
    /// By partition.
    pub lag_by_partition: BTreeMap<String, i64>,
    /// Active offers in the index.
    pub offers_indexed: f64,
    /// The budgeted offers with the most budget used.
    pub top_offers: Vec<BudgetBurn>,
    /// Input records whose transaction committed (pipeline only).
    pub committed_records: u64,
}

/// A failed request.
pub(crate) struct ApiError {
    status: StatusCode,
    body: ErrorBody,
}

impl ApiError {
    fn new(status: StatusCode, error: impl Into<String>) -> Self {
        ApiError { status, body: ErrorBody { error: error.into(), field: None } }
    }

    fn unavailable(error: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, error)
    }

    fn bad_request(field: Option<String>, error: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            body: ErrorBody { error: error.into(), field: field.filter(|f| !f.is_empty()) },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.status, axum::Json(self.body)).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        r
    }
}

impl App {
    /// Why the instance is not ready, if it is not.
    fn not_ready(&self) -> Option<&'static str> {
        if self.stop.load(Ordering::Relaxed) {
            Some("stopping")
        } else if !self.stats.ready.load(Ordering::Relaxed) {
            Some("loading the offers and joining the consumer group")
        } else if !self.stats.observed.restored() {
            Some("waiting for partitions and restoring their state")
        } else {
            None
        }
    }

    fn authorize(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let Some(token) = self.token.as_deref().filter(|t| !t.is_empty()) else {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "writes are disabled: no admin token is configured (admin.token or CARDLINK_ADMIN_TOKEN)",
            ));
        };
        if auth::bearer_ok(headers.get(header::AUTHORIZATION).map(HeaderValue::as_bytes), token) {
            Ok(())
        } else {
            Err(ApiError::new(StatusCode::UNAUTHORIZED, "missing or wrong bearer token (Authorization: Bearer …)"))
        }
    }

    /// Asks the engine thread and waits (bounded) for its answer.
    async fn ask(&self, ask: Ask) -> Result<Answer, ApiError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let query = Query::new(ask, move |a| {
            let _ = tx.send(a);
        });
        if self.stats.observed.ask(query).is_err() {
            return Err(ApiError::unavailable("the engine thread has too many queries waiting; retry"));
        }
        match tokio::time::timeout(ASK_TIMEOUT, rx).await {
            Ok(Ok(answer)) => Ok(answer),
            _ => Err(ApiError::unavailable(format!(
                "the engine thread did not answer within {} s (starting, restoring state, or stopping); retry",
                ASK_TIMEOUT.as_secs()
            ))),
        }
    }

    async fn offer(&self, id: &str) -> Result<Option<OfferView>, ApiError> {
        match self.ask(Ask::Offer(id.to_owned())).await? {
            Answer::Offer(o) => Ok(o),
            _ => Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "wrong answer kind")),
        }
    }

    /// Publishes an offer (or its retirement) to the offers topic, on a
    /// blocking thread: librdkafka calls never run on the runtime.
    async fn publish(&self, id: &str, offer: Option<Value>) -> Result<(), ApiError> {
        let Some(config) = self.kafka.clone() else {
            return Err(ApiError::unavailable(
                "this instance cannot change offers: it runs without Kafka (the demo); publish them with \
                 `cardlink offers publish` to a running pipeline",
            ));
        };
        let id = id.to_owned();
        let task = tokio::task::spawn_blocking(move || {
            let mut config = config;
            // An unreachable broker fails the request instead of holding it.
            config.kafka.options.insert("message.timeout.ms".into(), "10000".into());
            match offer {
                Some(v) => cardlink_kafka::feed::publish_offers(&config, &[v]).map(|_| ()),
                None => cardlink_kafka::feed::retire_offers(&config, &[id]),
            }
        });
        match tokio::time::timeout(PUBLISH_TIMEOUT, task).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(e))) => Err(ApiError::unavailable(format!("publishing to the offers topic failed: {e}"))),
            Ok(Err(e)) => Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("publishing failed: {e}"))),
            Err(_) => Err(ApiError::unavailable(format!(
                "publishing to the offers topic did not finish within {} s",
                PUBLISH_TIMEOUT.as_secs()
            ))),
        }
    }

    /// Waits (bounded) until the live index shows what `done` wants.
    async fn until_live(&self, id: &str, done: impl Fn(&OfferView) -> bool) -> Result<Option<OfferView>, ApiError> {
        let deadline = Instant::now() + LIVE_WAIT;
        loop {
            if let Some(v) = self.offer(id).await?.filter(|v| done(v)) {
                return Ok(Some(v));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The status page: live rates, totals, lag and budget burn.
#[utoipa::path(get, path = "/", tag = "operations",
    responses((status = 200, description = "A self-contained HTML page polling /v1/status", content_type = "text/html", body = String)))]
async fn status_page() -> Response {
    let mut r = axum::response::Html(crate::STATUS_PAGE).into_response();
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "Alive", body = Health)))]
async fn healthz() -> axum::Json<Health> {
    axum::Json(Health { status: "ok".into(), reason: None })
}

/// Readiness: the offers are loaded, and the assigned partitions' state is
/// restored.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready", body = Health),
        (status = 503, description = "Not ready, with the reason", body = Health)))]
async fn readyz(State(app): Shared) -> Response {
    match app.not_ready() {
        None => axum::Json(Health { status: "ready".into(), reason: None }).into_response(),
        Some(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(Health { status: "not ready".into(), reason: Some(reason.into()) }),
        )
            .into_response(),
    }
}

/// Prometheus metrics, text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Every cardlink metric", content_type = "text/plain", body = String)))]
async fn metrics(State(app): Shared) -> Response {
    cardlink_observe::metrics::set_ready(app.not_ready().is_none());
    let mut r = app.prometheus.render().into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    r
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json", body = Object)))]
async fn openapi() -> Response {
    static DOC: OnceLock<String> = OnceLock::new();
    let doc = DOC.get_or_init(|| ApiDoc::openapi().to_pretty_json().expect("the document serializes"));
    ([(header::CONTENT_TYPE, "application/json")], doc.as_str()).into_response()
}

/// The status page's numbers.
#[utoipa::path(get, path = "/v1/status", tag = "operations",
    responses((status = 200, description = "Totals since start", body = StatusView)))]
async fn status(State(app): Shared) -> axum::Json<StatusView> {
    let mut v = StatusView {
        mode: app.mode.into(),
        ready: app.not_ready().is_none(),
        uptime_seconds: app.started.elapsed().as_secs_f64(),
        events_total: 0.0,
        events_by_kind: BTreeMap::new(),
        rejects_total: 0.0,
        rejects_by_reason: BTreeMap::new(),
        duplicates_total: 0.0,
        rewards_total: 0.0,
        rewards_by_status: BTreeMap::new(),
        cash_issued: BTreeMap::new(),
        points_issued: 0.0,
        consumer_lag: 0,
        lag_by_partition: BTreeMap::new(),
        offers_indexed: 0.0,
        top_offers: Vec::new(),
        committed_records: app.stats.committed.load(Ordering::Relaxed),
    };
    use cardlink_observe::metrics as m;
    for s in promtext::parse(&app.prometheus.render()) {
        let label = |k: &str| s.label(k).unwrap_or_default().to_owned();
        match s.name.as_str() {
            m::EVENTS_TOTAL => {
                v.events_total += s.value;
                *v.events_by_kind.entry(label("kind")).or_default() += s.value;
            }
            m::REJECTS_TOTAL => {
                v.rejects_total += s.value;
                *v.rejects_by_reason.entry(label("reason")).or_default() += s.value;
            }
            m::DUPLICATES_TOTAL => v.duplicates_total += s.value,
            m::REWARDS_TOTAL => {
                v.rewards_total += s.value;
                *v.rewards_by_status.entry(label("status")).or_default() += s.value;
            }
            m::CASH_ISSUED_TOTAL => *v.cash_issued.entry(label("currency")).or_default() += s.value,
            m::POINTS_ISSUED_TOTAL => v.points_issued += s.value,
            m::OFFERS_INDEXED => v.offers_indexed = s.value,
            m::OFFER_BUDGET_USED_RATIO => v.top_offers.push(BudgetBurn { offer: label("offer"), ratio: s.value }),
            _ => {}
        }
    }
    v.top_offers.sort_by(|a, b| b.ratio.total_cmp(&a.ratio).then_with(|| a.offer.cmp(&b.offer)));
    v.top_offers.truncate(STATUS_TOP_OFFERS);
    for (p, lag) in app.stats.observed.lag() {
        v.consumer_lag += lag;
        v.lag_by_partition.insert(p.to_string(), lag);
    }
    axum::Json(v)
}

/// Every offer of the live index, active and retired, in the order they
/// were first seen.
#[utoipa::path(get, path = "/v1/offers", tag = "offers",
    responses(
        (status = 200, description = "The offers", body = Vec<OfferView>),
        (status = 503, description = "The engine thread did not answer", body = ErrorBody)))]
async fn list_offers(State(app): Shared) -> Result<axum::Json<Vec<OfferView>>, ApiError> {
    match app.ask(Ask::Offers).await? {
        Answer::Offers(all) => Ok(axum::Json(all)),
        _ => Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "wrong answer kind")),
    }
}

/// One offer of the live index, with its budget usage.
#[utoipa::path(get, path = "/v1/offers/{id}", tag = "offers",
    params(("id" = String, Path, description = "Offer id")),
    responses(
        (status = 200, description = "The offer", body = OfferView),
        (status = 404, description = "No such offer", body = ErrorBody),
        (status = 503, description = "The engine thread did not answer", body = ErrorBody)))]
async fn get_offer(State(app): Shared, Path(id): Path<String>) -> Result<axum::Json<OfferView>, ApiError> {
    app.offer(&id).await?.map(axum::Json).ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "no offer with this id"))
}

/// Creates or replaces an offer: validated like an offer file, then
/// published to the offers topic. Answers once the live index shows it
/// (200), or after a few seconds if it does not yet (202).
#[utoipa::path(put, path = "/v1/offers/{id}", tag = "offers",
    params(("id" = String, Path, description = "Offer id; must equal the body's id")),
    request_body(content = OfferInput, description = "The offer", content_type = "application/json"),
    security(("bearer_token" = [])),
    responses(
        (status = 200, description = "Published and live", body = OfferView),
        (status = 202, description = "Published, not yet live", body = Published),
        (status = 400, description = "Invalid offer; names the field", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 503, description = "Kafka unavailable, or no Kafka (demo)", body = ErrorBody)))]
async fn put_offer(
    State(app): Shared,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    app.authorize(&headers)?;
    let value: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(None, format!("the body is not a JSON offer: {e}")))?;
    let offer =
        cardlink_core::parse_offer(&value).map_err(|e| ApiError::bad_request(Some(e.field.clone()), e.to_string()))?;
    if *offer.id != *id {
        return Err(ApiError::bad_request(
            Some("id".into()),
            format!("field \"id\": the body's id {:?} differs from the id in the path {:?}", offer.id, id),
        ));
    }
    app.publish(&id, Some(offer_to_json(&offer))).await?;
    log::info!("offer {id:?} published through the admin API");
    let live =
        app.until_live(&id, |v| v.active && cardlink_core::parse_offer(&v.offer).is_ok_and(|o| o == offer)).await?;
    Ok(match live {
        Some(v) => axum::Json(v).into_response(),
        None => (StatusCode::ACCEPTED, axum::Json(not_yet_live(&id))).into_response(),
    })
}

fn not_yet_live(id: &str) -> Published {
    Published {
        id: id.to_owned(),
        status: "published".into(),
        detail: "on the offers topic; the live index shows it once the offers follower has read it".into(),
    }
}

/// Retires an offer: a tombstone on the offers topic. Its rewards still
/// settle; it matches nothing new.
#[utoipa::path(delete, path = "/v1/offers/{id}", tag = "offers",
    params(("id" = String, Path, description = "Offer id")),
    security(("bearer_token" = [])),
    responses(
        (status = 200, description = "Retired (the live view)", body = OfferView),
        (status = 202, description = "Tombstone published, not yet live", body = Published),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 404, description = "No such offer", body = ErrorBody),
        (status = 503, description = "Kafka unavailable, or no Kafka (demo)", body = ErrorBody)))]
async fn delete_offer(State(app): Shared, Path(id): Path<String>, headers: HeaderMap) -> Result<Response, ApiError> {
    app.authorize(&headers)?;
    let Some(current) = app.offer(&id).await? else {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "no offer with this id"));
    };
    if !current.active {
        return Ok(axum::Json(current).into_response());
    }
    app.publish(&id, None).await?;
    log::info!("offer {id:?} retired through the admin API");
    Ok(match app.until_live(&id, |v| !v.active).await? {
        Some(v) => axum::Json(v).into_response(),
        None => (StatusCode::ACCEPTED, axum::Json(not_yet_live(&id))).into_response(),
    })
}

/// A card's live rewards, pending and confirmed sums and activations,
/// from the instance that holds the card's partition. Another instance
/// answers 421 naming the owner (from the consumer group's membership).
#[utoipa::path(get, path = "/v1/cards/{token}", tag = "cards",
    params(("token" = String, Path, description = "The card's network token (never a card number)")),
    responses(
        (status = 200, description = "The card", body = CardView),
        (status = 400, description = "The token is a card number (PAN)", body = ErrorBody),
        (status = 404, description = "This instance owns the card's partition and has no state for it", body = ErrorBody),
        (status = 421, description = "Another instance owns the card's partition", body = Misdirected),
        (status = 503, description = "Ownership unknown (rebalancing, restoring) or no answer; retry", body = ErrorBody)))]
async fn get_card(State(app): Shared, Path(token): Path<String>) -> Result<Response, ApiError> {
    if cardlink_core::pan::contains_pan(&token) {
        // Never echo it back: a card number must not be written anywhere.
        return Err(ApiError::bad_request(
            None,
            "the token looks like a card number (PAN); cards are looked up by network token",
        ));
    }
    if let Answer::Card(Some(card)) = app.ask(Ask::Card(token.clone())).await? {
        return Ok(axum::Json(card).into_response());
    }
    let observed = &app.stats.observed;
    let (Some(owners), Some(partitions)) = (&app.owners, observed.partitions()) else {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "no state for this card"));
    };
    let partition = partition_of(token.as_bytes(), partitions);
    let held = match observed.assignment() {
        Some(held) if observed.restored() => held,
        _ => {
            return Err(ApiError::unavailable(
                "this instance is waiting for its partitions or restoring their state; retry",
            ));
        }
    };
    if held.contains(&partition) {
        return Err(ApiError::new(StatusCode::NOT_FOUND, format!("no state for this card (partition {partition})")));
    }
    let owners = owners.clone();
    let found = tokio::task::spawn_blocking(move || owners.owner_of(partition))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    match found {
        Ok(Some(owner)) => Ok((
            StatusCode::MISDIRECTED_REQUEST,
            axum::Json(Misdirected {
                error: format!("partition {partition} of this card is held by another instance; ask it"),
                partition,
                owner,
            }),
        )
            .into_response()),
        Ok(None) => Err(ApiError::unavailable(format!(
            "partition {partition} of this card is held by no group member right now (rebalancing); retry"
        ))),
        Err(e) => {
            Err(ApiError::unavailable(format!("partition {partition} is held elsewhere; its owner is unknown: {e}")))
        }
    }
}
