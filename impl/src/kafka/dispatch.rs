//! One request frame to one response frame: the request header, the API and version check,
//! the body decoded with Kafka's schema for that version, one handler per API (`apis/`), the
//! response encoded at the request's version.
//!
//! What cannot be answered in the request's own version ends the connection, as Kafka's
//! brokers do: a frame too short for a header, an unknown API key, a version not advertised
//! (except ApiVersions, answered in v0 with `UNSUPPORTED_VERSION` and the advertised
//! versions, per KIP-511), a header or body that does not decode. Errors inside a decoded
//! request (a bad batch, an unknown topic) are Kafka error codes in the response.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable};
use kafka_protocol::ResponseError;

use super::apis;
use super::errors::KafkaError;
use super::link::CoreLink;
use super::listener::KafkaContext;

/// What to do after a request.
#[derive(Debug)]
pub enum Dispatched {
    Respond(Bytes),
    /// A produce with acks=0: Kafka clients expect no response.
    NoResponse,
    Close(String),
}

/// One connection's state: its context and its registrations with partitions' event loops.
pub struct Session {
    pub context: Arc<KafkaContext>,
    serial: u64,
    links: BTreeMap<(String, i32), CoreLink>,
}

impl Session {
    pub fn new(context: Arc<KafkaContext>, serial: u64) -> Session {
        Session {
            context,
            serial,
            links: BTreeMap::new(),
        }
    }

    /// This connection's link to the partition's core, opened on first use;
    /// `UNKNOWN_TOPIC_OR_PARTITION` for a partition not in the table.
    pub async fn link(&mut self, topic: &str, partition: i32) -> Result<&mut CoreLink, KafkaError> {
        let key = (topic.to_owned(), partition);
        if !self.links.contains_key(&key) {
            let Some(route) = self.context.partitions.route(topic, partition) else {
                return Err(KafkaError::of(ResponseError::UnknownTopicOrPartition));
            };
            let link = CoreLink::open(route.inputs.clone(), self.serial)
                .await
                .map_err(|error| {
                    KafkaError::with(ResponseError::UnknownServerError, error.to_string())
                })?;
            self.links.insert(key.clone(), link);
        }
        Ok(self.links.get_mut(&key).expect("inserted above"))
    }

    pub async fn close(self) {
        for (_, link) in self.links {
            link.close().await;
        }
    }
}

/// Reads the header and routes the request (module doc).
pub async fn dispatch(mut frame: Bytes, session: &mut Session) -> Dispatched {
    if frame.len() < 8 {
        return Dispatched::Close(format!(
            "a {}-byte frame holds no request header",
            frame.len()
        ));
    }
    let key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let Ok(api) = ApiKey::try_from(key) else {
        return Dispatched::Close(format!("unknown API key {key}"));
    };
    let Some(range) = apis::advertised(api) else {
        return Dispatched::Close(format!("{api:?} is not served"));
    };
    let header = match RequestHeader::decode(&mut frame, api.request_header_version(version)) {
        Ok(header) => header,
        Err(error) => return Dispatched::Close(format!("{api:?} header: {error}")),
    };
    if !(range.min..=range.max).contains(&version) {
        return match api {
            ApiKey::ApiVersions => respond(
                header.correlation_id,
                0,
                ResponseKind::ApiVersions(apis::api_versions::unsupported()),
            ),
            _ => Dispatched::Close(format!("{api:?} v{version} is not served ({range})")),
        };
    }
    let request = match RequestKind::decode(api, &mut frame, version) {
        Ok(request) => request,
        Err(error) => return Dispatched::Close(format!("{api:?} v{version} body: {error}")),
    };
    if frame.has_remaining() {
        return Dispatched::Close(format!("{api:?} v{version}: bytes after the body"));
    }
    match apis::handle(request, version, session).await {
        Some(response) => respond(header.correlation_id, version, response),
        None => Dispatched::NoResponse,
    }
}

fn respond(correlation_id: i32, version: i16, response: ResponseKind) -> Dispatched {
    let mut out = BytesMut::new();
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let encoded = header
        .encode(&mut out, response.header_version(version))
        .and_then(|()| response.encode(&mut out, version));
    match encoded {
        Ok(()) => Dispatched::Respond(out.freeze()),
        // A response the schema cannot carry at this version is a bug of a handler; the
        // client is told by a closed connection rather than a wrong frame.
        Err(error) => Dispatched::Close(format!("response not encodable: {error}")),
    }
}
