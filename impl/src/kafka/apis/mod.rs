//! One file per Kafka API: each takes its decoded request and builds its response; this file
//! says which versions are advertised and routes a request to its handler.
//!
//! The advertised ranges are those the tests drive (librdkafka 2.16 and kcat 1.7 pick the
//! highest of each; the proptest decodes every advertised version). Versions beyond them
//! add fields this adapter would have to understand (topic ids in Fetch v13+, for one).

use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};
use kafka_protocol::protocol::VersionRange;

use super::dispatch::Session;

pub mod api_versions;
pub mod create_topics;
pub mod fetch;
pub mod init_producer_id;
pub mod list_offsets;
pub mod metadata;
pub mod produce;

/// Every served API and the versions advertised for it.
pub const ADVERTISED: &[(ApiKey, VersionRange)] = &[
    (ApiKey::Produce, VersionRange { min: 3, max: 9 }),
    (ApiKey::Fetch, VersionRange { min: 4, max: 12 }),
    (ApiKey::ListOffsets, VersionRange { min: 1, max: 7 }),
    (ApiKey::Metadata, VersionRange { min: 1, max: 9 }),
    (ApiKey::ApiVersions, VersionRange { min: 0, max: 3 }),
    (ApiKey::CreateTopics, VersionRange { min: 2, max: 7 }),
    (ApiKey::InitProducerId, VersionRange { min: 0, max: 4 }),
];

/// The advertised versions of `api`; `None`: not served.
pub fn advertised(api: ApiKey) -> Option<VersionRange> {
    ADVERTISED
        .iter()
        .find(|(key, _)| *key == api)
        .map(|(_, range)| *range)
}

/// Runs the request's handler; `None`: no response (a produce with acks=0).
pub async fn handle(
    request: RequestKind,
    version: i16,
    session: &mut Session,
) -> Option<ResponseKind> {
    let response = match request {
        RequestKind::ApiVersions(_) => ResponseKind::ApiVersions(api_versions::handle()),
        RequestKind::Metadata(request) => {
            ResponseKind::Metadata(metadata::handle(request, version, session).await)
        }
        RequestKind::Produce(request) => {
            return produce::handle(request, version, session)
                .await
                .map(ResponseKind::Produce)
        }
        RequestKind::Fetch(request) => {
            ResponseKind::Fetch(fetch::handle(request, version, session).await)
        }
        RequestKind::ListOffsets(request) => {
            ResponseKind::ListOffsets(list_offsets::handle(request, version, session).await)
        }
        RequestKind::InitProducerId(request) => {
            ResponseKind::InitProducerId(init_producer_id::handle(request, session))
        }
        RequestKind::CreateTopics(request) => {
            ResponseKind::CreateTopics(create_topics::handle(request, session).await)
        }
        other => unreachable!("dispatch decodes advertised APIs only, not {other:?}"),
    };
    Some(response)
}
