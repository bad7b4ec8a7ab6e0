//! ApiVersions: the advertised versions (`apis::ADVERTISED`).

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::ApiVersionsResponse;
use kafka_protocol::ResponseError;

pub fn handle() -> ApiVersionsResponse {
    let api_keys = super::ADVERTISED
        .iter()
        .map(|(key, range)| {
            ApiVersion::default()
                .with_api_key(*key as i16)
                .with_min_version(range.min)
                .with_max_version(range.max)
        })
        .collect();
    ApiVersionsResponse::default().with_api_keys(api_keys)
}

/// KIP-511: a client asking a newer ApiVersions than served is answered in v0, with
/// `UNSUPPORTED_VERSION` and the versions served, and retries with one of those.
pub fn unsupported() -> ApiVersionsResponse {
    handle().with_error_code(ResponseError::UnsupportedVersion.code())
}
